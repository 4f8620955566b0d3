"""The envelope a call sends, argument checks, reply decoding, socket options."""

import re
import time

import pytest

import shipgate
from shipgate import Code, rpc_pb
from shipgate._core import Options, prepare
from shipgate._gen import policy

from conftest import Reply

TRACK_REQ = shipgate.TrackRequest(provider=shipgate.PROVIDER_BOSCOD, order_id="BOS123")


def ok_track(order_id="BOS123"):
    r = shipgate.TrackResponse()
    r.tracking.order_id = order_id
    return r.SerializeToString()


def _prep(method="Track", req=None, rtype=None, **kw):
    args = dict(deadline_ms=None, metadata=None, idempotency_key=None, request_id=None)
    args.update(kw)
    return prepare(Options.make(), method, req, rtype, **args)


# ---------------------------------------------------------------------------- prepare


def test_method_spellings():
    for name in ("Track", "shipgate.v1.Shipgate.Track", "/shipgate.v1.Shipgate/Track"):
        c = _prep(name, TRACK_REQ)
        assert c.method == "/shipgate.v1.Shipgate/Track" == c.envelope.method
        assert c.kind == policy.IDEMPOTENT and c.response_type is shipgate.TrackResponse
    assert _prep("GetOrder").kind == policy.IDEMPOTENT and _prep("Health").kind == policy.IDEMPOTENT
    assert _prep("CreateOrder").kind == policy.OTHER
    assert _prep("CreateOrder", idempotency_key="k1").kind == policy.KEYED


def test_payload_forms():
    want = TRACK_REQ.SerializeToString()
    assert _prep("Track", TRACK_REQ).envelope.payload == want
    assert _prep("Track", {"provider": "PROVIDER_BOSCOD", "orderId": "BOS123"}).envelope.payload == want
    assert _prep("Track", {"provider": 1, "order_id": "BOS123"}).envelope.payload == want
    assert _prep("Track", want).envelope.payload == want
    assert _prep("Health").envelope.payload == b""


def test_foreign_method_is_passed_through_and_not_idempotent():
    c = _prep("/other.v1.Svc/Do", b"\x01\x02")
    assert c.method == "/other.v1.Svc/Do" and c.envelope.payload == b"\x01\x02"
    assert c.kind == policy.OTHER and c.response_type is None
    assert _prep("/other.v1.Svc/Do", idempotency_key="k").kind == policy.KEYED


@pytest.mark.parametrize(
    "kw",
    [
        dict(method="Teleport"),
        dict(method=""),
        dict(method="/shipgate.v1.Shipgate/"),
        dict(method="Track", req=shipgate.GetOrderRequest()),
        dict(method="Track", rtype=shipgate.GetOrderResponse),
        dict(method="Track", req={"no_such_field": 1}),
        dict(method="Track", req=42),
        dict(method="Track", metadata={"Caller": "x"}),
        dict(method="Track", metadata={"caller": 5}),
        dict(method="Track", metadata={"": "x"}),
        dict(method="Track", deadline_ms="soon"),
    ],
)
def test_bad_arguments_fail_locally(kw):
    with pytest.raises(shipgate.InvalidArgument) as ei:
        _prep(**kw)
    e = ei.value
    assert e.local and e.reason == "CLIENT_INVALID_ARGUMENT" and e.attempts == 0 and e.request_id


def test_envelope_fields():
    c = _prep("Track", TRACK_REQ, metadata={"caller": "svc-a", "trace.id": "t-1"},
              idempotency_key="key-1", request_id="rid-1")
    env = c.envelope
    assert dict(env.metadata) == {"caller": "svc-a", "trace.id": "t-1"}
    assert env.idempotency_key == "key-1" and env.request_id == "rid-1"
    assert re.fullmatch(r"[0-9a-f]{16}", _prep().request_id)
    assert _prep().request_id != _prep().request_id
    # metadata as pairs
    assert dict(_prep(metadata=[("a", "1")]).envelope.metadata) == {"a": "1"}


def test_default_deadline():
    o = Options.make(default_deadline_ms=1234)
    c = prepare(o, "Health", None, None, deadline_ms=None, metadata=None,
                idempotency_key=None, request_id=None)
    left = c.deadline - time.monotonic() * 1000
    assert 1200 < left <= 1234


def test_options_are_checked():
    for bad in (dict(max_attempts=0), dict(default_deadline_ms=-1), dict(max_reply_size=0),
                dict(connect_timeout_ms=True), dict(backoff_base_ms=-5)):
        with pytest.raises(ValueError):
            Options.make(**bad)
    with pytest.raises(ValueError):
        Options.make(["127.0.0.1:7400"])
    assert Options.make().addresses == ("tcp://127.0.0.1:7400",)
    assert Options.make("ipc:///tmp/x").addresses == ("ipc:///tmp/x",)
    assert Options.make(backoff_base_ms=500, backoff_cap_ms=100).backoff_cap_ms == 500


# ---------------------------------------------------------------------------- on the wire


def test_what_the_gateway_receives(fake):
    g = fake(lambda req, n: Reply(payload=ok_track()))
    with shipgate.Client([g.url]) as c:
        r = c.track(TRACK_REQ, deadline_ms=2000, metadata={"caller": "me"},
                    idempotency_key="k-9", request_id="req-42")
    assert r.tracking.order_id == "BOS123"
    assert g.count == 1
    env = g.requests[0][1]
    assert env.method == "/shipgate.v1.Shipgate/Track"
    assert 1500 < env.deadline_ms <= 2000
    assert dict(env.metadata) == {"caller": "me"}
    assert env.idempotency_key == "k-9" and env.request_id == "req-42"
    assert shipgate.TrackRequest.FromString(env.payload) == TRACK_REQ


def test_spent_budget_sends_nothing(fake):
    g = fake(lambda req, n: Reply(payload=ok_track()))
    with shipgate.Client([g.url]) as c:
        for d in (-1, -5000):
            with pytest.raises(shipgate.DeadlineExceeded) as ei:
                c.track(TRACK_REQ, deadline_ms=d)
            e = ei.value
            assert e.local and e.reason == "CLIENT_DEADLINE_EXPIRED" and e.attempts == 0
        c.health(deadline_ms=2000)  # the client still works
    assert g.count == 1


def test_gateway_status_becomes_the_exception(fake):
    detail = dict(reason="UPSTREAM_NOT_FOUND", upstream_http_status=404, provider="boscod",
                  provider_code="404", provider_message="not here",
                  field_violations=[("order_id", "unknown")])
    g = fake(lambda req, n: Reply(code=Code.NOT_FOUND, message="no such order", detail=detail))
    with shipgate.Client([g.url]) as c:
        with pytest.raises(shipgate.NotFound) as ei:
            c.track(TRACK_REQ, request_id="r-1")
    e = ei.value
    assert e.message == "no such order" and e.reason == "UPSTREAM_NOT_FOUND"
    assert e.upstream_http_status == 404 and e.provider == "boscod" and e.provider_code == "404"
    assert e.provider_message == "not here" and e.violations[0].field == "order_id"
    assert not e.local and e.attempts == 1 and e.request_id == "r-1" and not e.retryable


@pytest.mark.parametrize(
    "reply,why",
    [
        (Reply(raw=b"\xff\xff\xff garbage"), "not a shipgate.v1.RpcReply"),
        (Reply(no_status=True), "not a shipgate.v1.RpcReply"),
        (Reply(request_id="someone-else", payload=b""), "answers request someone-else"),
        (Reply(payload=b"\x0a\xff"), "reply payload is not a shipgate.v1.TrackResponse"),
    ],
)
def test_unusable_replies(fake, reply, why):
    g = fake(lambda req, n: reply)
    with shipgate.Client([g.url]) as c:
        with pytest.raises(shipgate.Internal) as ei:
            c.track(TRACK_REQ, deadline_ms=2000)
    e = ei.value
    assert e.local and e.reason == "CLIENT_BAD_REPLY" and why in e.message
    assert g.count == 1  # never retried


def test_foreign_method_returns_raw_bytes(fake):
    g = fake(lambda req, n: Reply(payload=req.payload[::-1]))
    with shipgate.Client([g.url]) as c:
        assert c.call("/other.v1.Svc/Echo", b"abc") == b"cba"
        r = c.call("/other.v1.Svc/Echo", b"", shipgate.HealthResponse)
        assert isinstance(r, shipgate.HealthResponse)


def test_reply_over_max_reply_size_inproc(fake):
    # inproc does not enforce nng's recv_max_size: the client's own check does
    g = fake(lambda req, n: Reply(payload=b"x" * 5000), url="inproc://sg-too-large")
    with shipgate.Client([g.url], max_reply_size=1024) as c:
        with pytest.raises(shipgate.ResourceExhausted) as ei:
            c.call("/other.v1.Svc/Big", b"")
    assert ei.value.reason == "TRANSPORT_REPLY_TOO_LARGE" and ei.value.local
    assert g.count == 1


def test_reply_over_max_reply_size_tcp(fake):
    # over tcp nng drops the connection before allocating the message
    g = fake(lambda req, n: Reply(payload=b"x" * 50000))
    with shipgate.Client([g.url], max_reply_size=1024, max_attempts=1) as c:
        with pytest.raises(shipgate.Unavailable) as ei:
            c.health(deadline_ms=3000)
    assert ei.value.reason == "TRANSPORT_CONNECTION_LOST"


def test_socket_options():
    c = shipgate.AsyncClient(["tcp://127.0.0.1:1", "inproc://sg-opts"], max_reply_size=12345)
    try:
        for ep in c._eps:
            assert ep.sock.resend_time == -1  # NNG_OPT_REQ_RESENDTIME = NNG_DURATION_INFINITE
            assert ep.sock.recv_max_size == 12345
            assert ep.sock.reconnect_time_min == 100 and ep.sock.reconnect_time_max == 1000
    finally:
        c.close()


def test_bad_address():
    with pytest.raises(ValueError):
        shipgate.Client(["nope://x"])
    with pytest.raises(ValueError):
        shipgate.AsyncClient("tcp://")


# ---------------------------------------------------------------------------- generated code


def test_generated_code_imports_and_pickles():
    import pickle

    from shipgate._gen.shipgate.v1 import views_pb2  # imports rpc_pb2 and shipgate_pb2

    assert shipgate.TrackRequest.__module__ == "shipgate._gen.shipgate.v1.shipgate_pb2"
    assert pickle.loads(pickle.dumps(TRACK_REQ)) == TRACK_REQ
    # the typed view is wire-identical to the envelope (views.proto)
    call = views_pb2.TrackCall(method="/shipgate.v1.Shipgate/Track", payload=TRACK_REQ)
    env = rpc_pb.RpcRequest.FromString(call.SerializeToString())
    assert shipgate.TrackRequest.FromString(env.payload) == TRACK_REQ
    assert shipgate.METHODS["Track"].request_type is shipgate.TrackRequest


def test_generate_is_idempotent(tmp_path):
    import hashlib
    import os
    import shutil
    import subprocess
    import sys
    from pathlib import Path

    here = Path(__file__).resolve().parents[1]
    if shutil.which("bash") is None:  # pragma: no cover
        pytest.skip("no bash")
    try:
        import grpc_tools  # noqa: F401
    except ImportError:  # pragma: no cover
        pytest.skip("no grpcio-tools")
    # a copy of the package directory, so that the test never races the real one
    work = tmp_path / "py"
    (work / "shipgate").mkdir(parents=True)
    shutil.copy(here / "generate.sh", work / "generate.sh")
    shutil.copy(here.parent / "gen_policy.py", tmp_path / "gen_policy.py")  # ../gen_policy.py
    env = dict(os.environ, PYTHON=sys.executable, SHIPGATE_PROTO_DIR=str(here.parents[1] / "proto"))

    def digest():
        h = hashlib.sha256()
        for p in sorted((work / "shipgate" / "_gen").rglob("*")):
            if p.is_file():
                h.update(str(p.relative_to(work)).encode() + p.read_bytes())
        return h.hexdigest()

    for _ in range(2):
        subprocess.run(["bash", str(work / "generate.sh")], env=env, check=True, timeout=60,
                       stdout=subprocess.DEVNULL)
    first = digest()
    subprocess.run(["bash", str(work / "generate.sh")], env=env, check=True, timeout=60,
                   stdout=subprocess.DEVNULL)
    assert digest() == first
    assert not list((work / "shipgate").glob("._gen.*"))  # no temporary left behind


def test_ipc_and_inproc_transports(fake, tmp_path):
    for url in (f"ipc://{tmp_path}/sg.sock", "inproc://sg-transport"):
        g = fake(lambda req, n: Reply(), url=url)
        with shipgate.Client([g.url]) as c:
            assert isinstance(c.health(deadline_ms=2000), shipgate.HealthResponse)
        assert g.count == 1
