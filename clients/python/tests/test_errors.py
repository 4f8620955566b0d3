"""Status decoding: the gateway's Status/ErrorDetail into ShipgateError and its subclasses."""

import pickle

import pytest

import shipgate
from shipgate import Code, rpc_pb
from shipgate.errors import ShipgateError, code_name, error_for


def test_code_enum_matches_the_contract():
    for v in rpc_pb.Code.DESCRIPTOR.values:
        assert Code[v.name] == v.number
    assert len(Code) == len(rpc_pb.Code.DESCRIPTOR.values)


def test_subclass_per_code():
    names = {
        "CANCELLED": shipgate.Cancelled,
        "UNKNOWN": shipgate.Unknown,
        "INVALID_ARGUMENT": shipgate.InvalidArgument,
        "DEADLINE_EXCEEDED": shipgate.DeadlineExceeded,
        "NOT_FOUND": shipgate.NotFound,
        "ALREADY_EXISTS": shipgate.AlreadyExists,
        "PERMISSION_DENIED": shipgate.PermissionDenied,
        "RESOURCE_EXHAUSTED": shipgate.ResourceExhausted,
        "FAILED_PRECONDITION": shipgate.FailedPrecondition,
        "ABORTED": shipgate.Aborted,
        "OUT_OF_RANGE": shipgate.OutOfRange,
        "UNIMPLEMENTED": shipgate.Unimplemented,
        "INTERNAL": shipgate.Internal,
        "UNAVAILABLE": shipgate.Unavailable,
        "DATA_LOSS": shipgate.DataLoss,
        "UNAUTHENTICATED": shipgate.Unauthenticated,
    }
    for name, cls in names.items():
        e = error_for(Code[name], "m")
        assert type(e) is cls and isinstance(e, ShipgateError)
        assert e.code == Code[name] and e.code_name == name and cls.CODE == Code[name]
        assert cls.__module__ == "shipgate.errors"
    assert type(error_for(0)) is ShipgateError


def test_from_status_takes_every_field():
    st = rpc_pb.Status(code=rpc_pb.INVALID_ARGUMENT, message="bad order")
    d = st.detail
    d.reason = "UPSTREAM_BAD_REQUEST"
    d.retryable = True
    d.upstream_http_status = 400
    d.provider = "fuuffy"
    d.provider_code = "E42"
    d.provider_message = "order_id is wrong"
    d.field_violations.add(field="order_id", description="not a number")
    d.field_violations.add(field="receiver.phone", description="too short")
    d.retry_after_ms = 1500
    e = ShipgateError.from_status(st, attempts=2, request_id="abc")
    assert isinstance(e, shipgate.InvalidArgument)
    assert e.code is Code.INVALID_ARGUMENT and e.code_name == "INVALID_ARGUMENT"
    assert e.message == "bad order" and e.reason == "UPSTREAM_BAD_REQUEST"
    assert e.retryable is True and e.upstream_http_status == 400
    assert (e.provider, e.provider_code, e.provider_message) == ("fuuffy", "E42", "order_id is wrong")
    assert [(v.field, v.description) for v in e.violations] == [
        ("order_id", "not a number"),
        ("receiver.phone", "too short"),
    ]
    assert e.retry_after_ms == 1500 and e.attempts == 2 and e.request_id == "abc"
    assert e.local is False
    assert "INVALID_ARGUMENT" in str(e) and "UPSTREAM_BAD_REQUEST" in str(e)


def test_absent_detail_is_none_not_empty():
    e = ShipgateError.from_status(rpc_pb.Status(code=rpc_pb.NOT_FOUND))
    assert e.reason is None and e.provider is None and e.provider_code is None
    assert e.provider_message is None and e.violations == () and e.retry_after_ms == 0
    assert e.message == "" and str(e) == "NOT_FOUND"


def test_unknown_code_number():
    e = error_for(99, "from the future")
    assert type(e) is ShipgateError and e.code == 99 and e.code_name == "UNKNOWN_CODE"
    assert code_name(14) == "UNAVAILABLE" and code_name(-1) == "UNKNOWN_CODE"


def test_picklable_and_to_dict():
    e = shipgate.Unavailable("down", reason="UPSTREAM_UNAVAILABLE", retryable=True,
                             violations=[("a", "b")], attempts=3, local=True, request_id="r1")
    e2 = pickle.loads(pickle.dumps(e))
    assert type(e2) is shipgate.Unavailable and e2.to_dict() == e.to_dict()
    assert e.to_dict()["code"] == "UNAVAILABLE" and e.to_dict()["violations"] == [("a", "b")]


def test_catch_by_base_or_subclass():
    with pytest.raises(ShipgateError):
        raise error_for(Code.NOT_FOUND, "x")
    with pytest.raises(shipgate.NotFound):
        raise error_for(Code.NOT_FOUND, "x")
