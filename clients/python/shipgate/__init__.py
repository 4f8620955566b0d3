"""shipgate: the Python client of the shipgate gateway.

    import shipgate
    with shipgate.Client(["tcp://127.0.0.1:7400"]) as c:
        r = c.track(shipgate.TrackRequest(provider=shipgate.PROVIDER_BOSCOD, order_id="BOS123"))
        print(shipgate.TrackingStatus.Name(r.tracking.status))

``Client`` is synchronous, ``AsyncClient`` (also ``shipgate.aio.AsyncClient``) the asyncio
form. Failed calls raise :class:`ShipgateError` (subclasses per code in ``shipgate.errors``).
The contract's messages and enums are re-exported here; the generated modules are
``shipgate.pb`` (shipgate.proto) and ``shipgate.rpc_pb`` (rpc.proto).
"""

from __future__ import annotations

try:
    from ._gen.shipgate.v1 import rpc_pb2 as rpc_pb
    from ._gen.shipgate.v1 import shipgate_pb2 as pb
except ImportError as _e:  # pragma: no cover - shipgate/_gen (committed) was removed
    if "_gen" not in str(_e):
        raise
    raise ImportError(
        "shipgate's message code (shipgate/_gen) is missing: run clients/python/generate.sh "
        "in the shipgate repository and reinstall"
    ) from _e

from ._core import DEFAULT_ADDRESS, Options
from ._methods import CREATE_ORDER, GET_ORDER, HEALTH, METHODS, TRACK
from .aio import AsyncClient
from .client import Client
from .errors import (
    Aborted,
    AlreadyExists,
    Cancelled,
    Code,
    DataLoss,
    DeadlineExceeded,
    FailedPrecondition,
    FieldViolation,
    Internal,
    InvalidArgument,
    NotFound,
    OutOfRange,
    PermissionDenied,
    ResourceExhausted,
    ShipgateError,
    Unauthenticated,
    Unavailable,
    Unimplemented,
    Unknown,
    code_name,
    error_for,
)

__version__ = "0.1.0"

# the contract's messages and enums, e.g. shipgate.TrackRequest, shipgate.PROVIDER_BOSCOD
_msgs = [n for n in pb.DESCRIPTOR.message_types_by_name]
_enums = [n for n in pb.DESCRIPTOR.enum_types_by_name]
_values = [v.name for e in pb.DESCRIPTOR.enum_types_by_name.values() for v in e.values]
for _n in _msgs + _enums + _values:
    globals()[_n] = getattr(pb, _n)

__all__ = [
    "Client",
    "AsyncClient",
    "Options",
    "DEFAULT_ADDRESS",
    "METHODS",
    "TRACK",
    "GET_ORDER",
    "CREATE_ORDER",
    "HEALTH",
    "pb",
    "rpc_pb",
    "Code",
    "code_name",
    "error_for",
    "FieldViolation",
    "ShipgateError",
    "Cancelled",
    "Unknown",
    "InvalidArgument",
    "DeadlineExceeded",
    "NotFound",
    "AlreadyExists",
    "PermissionDenied",
    "ResourceExhausted",
    "FailedPrecondition",
    "Aborted",
    "OutOfRange",
    "Unimplemented",
    "Internal",
    "Unavailable",
    "DataLoss",
    "Unauthenticated",
] + _msgs + _enums + _values
del _n
