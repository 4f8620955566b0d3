"""Status codes and the exceptions a failed call raises.

Every failed call raises a :class:`ShipgateError`, or rather the subclass named after its code
(:class:`NotFound`, :class:`Unavailable`, ...), so callers may catch either. The exception
carries the gateway's ``Status``/``ErrorDetail`` (rpc.proto), or a status the client made
itself (``local`` is then true) with one of these reasons, from
proto/shipgate/v1/client_policy.json (``shipgate._gen.policy.REASON_*``), as in every client:

====================================  ==========================================================
``TRANSPORT_NOT_CONNECTED``           UNAVAILABLE (DEADLINE_EXCEEDED when it used up the
                                      budget): no connection within ``connect_timeout_ms``
                                      (over TLS also a handshake that fails: a certificate
                                      that does not verify, or refused)
``TRANSPORT_CONNECTION_LOST``         UNAVAILABLE: the connection dropped while waiting for the
                                      reply (over tcp/ipc also what an over-size reply does)
``TRANSPORT_TIMEOUT``                 DEADLINE_EXCEEDED: no reply within the deadline (or the
                                      attempt timeout)
``TRANSPORT_ERROR``                   UNAVAILABLE: any other nng send/receive failure
``TRANSPORT_REPLY_TOO_LARGE``         RESOURCE_EXHAUSTED: reply over ``max_reply_size``
``OUTCOME_UNKNOWN``                   UNKNOWN: a CreateOrder (or unknown method) went out, then its
                                      connection broke or no reply came in time; not retried
                                      (check with the provider before trying again), except on
                                      a gateway of the same fleet (see README, Fleets)
``CLIENT_DEADLINE_EXPIRED``           DEADLINE_EXCEEDED: the budget was spent before anything
                                      was sent
``CLIENT_BAD_REPLY``                  INTERNAL: the reply (envelope or payload) does not decode
``CLIENT_INVALID_ARGUMENT``           INVALID_ARGUMENT: bad method, message type or option
``CLIENT_CANCELLED``                  CANCELLED: the client was closed during the call
====================================  ==========================================================

This module does not need the generated message code.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Any, Dict, Iterable, Optional, Tuple, Type, Union

__all__ = [
    "Code",
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
    "error_for",
    "code_name",
]


class Code(enum.IntEnum):
    """gRPC status codes, the numbers of ``shipgate.v1.Code`` (and ``google.rpc.Code``)."""

    OK = 0
    CANCELLED = 1
    UNKNOWN = 2
    INVALID_ARGUMENT = 3
    DEADLINE_EXCEEDED = 4
    NOT_FOUND = 5
    ALREADY_EXISTS = 6
    PERMISSION_DENIED = 7
    RESOURCE_EXHAUSTED = 8
    FAILED_PRECONDITION = 9
    ABORTED = 10
    OUT_OF_RANGE = 11
    UNIMPLEMENTED = 12
    INTERNAL = 13
    UNAVAILABLE = 14
    DATA_LOSS = 15
    UNAUTHENTICATED = 16


def code_name(code: int) -> str:
    """The name of a gRPC code ("OK", "UNAVAILABLE", ...); "UNKNOWN_CODE" outside 0..16."""
    try:
        return Code(code).name
    except ValueError:
        return "UNKNOWN_CODE"


def _as_code(code: int) -> Union[Code, int]:
    try:
        return Code(code)
    except ValueError:
        return int(code)


@dataclass(frozen=True)
class FieldViolation:
    """One entry of ``ErrorDetail.field_violations``."""

    field: str  # dotted path, e.g. "receiver.phone"
    description: str


class ShipgateError(Exception):
    """A call that did not end OK.

    Attributes:
        code: the gRPC code, a :class:`Code` (a plain int for a number outside the enum).
        code_name: its name, e.g. ``"NOT_FOUND"``.
        message: human-readable English; may change between releases.
        reason: stable upper-case identifier to branch on (``"UPSTREAM_NOT_FOUND"``,
            ``"TRANSPORT_TIMEOUT"``, ...), or None.
        retryable: the same call may succeed later (with the same idempotency key).
        upstream_http_status: the provider's HTTP status, 0 when it did not answer.
        provider: lower-case provider name, or None.
        provider_code, provider_message: the provider's own error code and text, or None.
        violations: tuple of :class:`FieldViolation`.
        retry_after_ms: wait this long before retrying; 0 if unknown.
        attempts: attempts sent or tried; 0 when the call failed before any.
        local: True when the client made this status (transport or local failure), False when
            it is the gateway's.
        request_id: the ``RpcRequest.request_id`` the call used.
    """

    #: the code of a subclass; ShipgateError itself takes it as an argument
    CODE: Optional[Code] = None

    def __init__(
        self,
        code: int,
        message: str = "",
        *,
        reason: Optional[str] = None,
        retryable: bool = False,
        upstream_http_status: int = 0,
        provider: Optional[str] = None,
        provider_code: Optional[str] = None,
        provider_message: Optional[str] = None,
        violations: Iterable[Union[FieldViolation, Tuple[str, str]]] = (),
        retry_after_ms: int = 0,
        attempts: int = 0,
        local: bool = False,
        request_id: Optional[str] = None,
    ) -> None:
        self.code = _as_code(code)
        self.message = message or ""
        self.reason = reason or None
        self.retryable = bool(retryable)
        self.upstream_http_status = int(upstream_http_status)
        self.provider = provider or None
        self.provider_code = provider_code or None
        self.provider_message = provider_message or None
        self.violations = tuple(
            v if isinstance(v, FieldViolation) else FieldViolation(*v) for v in violations
        )
        self.retry_after_ms = int(retry_after_ms)
        self.attempts = int(attempts)
        self.local = bool(local)
        self.request_id = request_id or None
        super().__init__(self.message)

    @property
    def code_name(self) -> str:
        return code_name(self.code)

    def __str__(self) -> str:
        s = f"{self.code_name}: {self.message}" if self.message else self.code_name
        if self.reason:
            s += f" [{self.reason}]"
        return s

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(code={self.code_name}, reason={self.reason!r}, "
            f"message={self.message!r}, local={self.local}, attempts={self.attempts})"
        )

    def __reduce__(self):  # picklable, keyword attributes included
        return (_rebuild, (self.code, self.message, self.to_dict()))

    def to_dict(self) -> Dict[str, Any]:
        """The status as plain data (for logs)."""
        return {
            "code": self.code_name,
            "message": self.message,
            "reason": self.reason,
            "retryable": self.retryable,
            "upstream_http_status": self.upstream_http_status,
            "provider": self.provider,
            "provider_code": self.provider_code,
            "provider_message": self.provider_message,
            "violations": [(v.field, v.description) for v in self.violations],
            "retry_after_ms": self.retry_after_ms,
            "attempts": self.attempts,
            "local": self.local,
            "request_id": self.request_id,
        }

    @classmethod
    def from_status(cls, status: Any, **extra: Any) -> "ShipgateError":
        """The exception for a ``shipgate.v1.Status`` message (the gateway's, local=False)."""
        d = status.detail
        return error_for(
            status.code,
            status.message,
            reason=d.reason,
            retryable=d.retryable,
            upstream_http_status=d.upstream_http_status,
            provider=d.provider,
            provider_code=d.provider_code,
            provider_message=d.provider_message,
            violations=[(v.field, v.description) for v in d.field_violations],
            retry_after_ms=d.retry_after_ms,
            **extra,
        )


def _rebuild(code: int, message: str, attrs: Dict[str, Any]) -> ShipgateError:
    attrs = dict(attrs)
    for k in ("code", "message"):
        attrs.pop(k, None)
    return error_for(code, message, **attrs)


def _subclass(name: str, code: Code, doc: str) -> Type[ShipgateError]:
    def __init__(self, message: str = "", **kw: Any) -> None:
        ShipgateError.__init__(self, code, message, **kw)

    return type(name, (ShipgateError,), {"CODE": code, "__init__": __init__, "__doc__": doc})


Cancelled = _subclass("Cancelled", Code.CANCELLED, "CANCELLED: the call was cancelled.")
Unknown = _subclass("Unknown", Code.UNKNOWN, "UNKNOWN, e.g. OUTCOME_UNKNOWN of a CreateOrder.")
InvalidArgument = _subclass("InvalidArgument", Code.INVALID_ARGUMENT, "INVALID_ARGUMENT.")
DeadlineExceeded = _subclass("DeadlineExceeded", Code.DEADLINE_EXCEEDED, "DEADLINE_EXCEEDED.")
NotFound = _subclass("NotFound", Code.NOT_FOUND, "NOT_FOUND.")
AlreadyExists = _subclass("AlreadyExists", Code.ALREADY_EXISTS, "ALREADY_EXISTS.")
PermissionDenied = _subclass("PermissionDenied", Code.PERMISSION_DENIED, "PERMISSION_DENIED.")
ResourceExhausted = _subclass(
    "ResourceExhausted", Code.RESOURCE_EXHAUSTED, "RESOURCE_EXHAUSTED, e.g. rate limited."
)
FailedPrecondition = _subclass(
    "FailedPrecondition", Code.FAILED_PRECONDITION, "FAILED_PRECONDITION."
)
Aborted = _subclass("Aborted", Code.ABORTED, "ABORTED.")
OutOfRange = _subclass("OutOfRange", Code.OUT_OF_RANGE, "OUT_OF_RANGE.")
Unimplemented = _subclass("Unimplemented", Code.UNIMPLEMENTED, "UNIMPLEMENTED.")
Internal = _subclass("Internal", Code.INTERNAL, "INTERNAL.")
Unavailable = _subclass("Unavailable", Code.UNAVAILABLE, "UNAVAILABLE.")
DataLoss = _subclass("DataLoss", Code.DATA_LOSS, "DATA_LOSS.")
Unauthenticated = _subclass("Unauthenticated", Code.UNAUTHENTICATED, "UNAUTHENTICATED.")

for _cls in list(globals().values()):
    if isinstance(_cls, type) and issubclass(_cls, ShipgateError) and _cls.CODE is not None:
        _cls.__module__ = __name__
        _cls.__qualname__ = _cls.__name__

_BY_CODE: Dict[int, Type[ShipgateError]] = {
    c.CODE: c for c in ShipgateError.__subclasses__() if c.CODE is not None  # type: ignore
}


def error_for(code: int, message: str = "", **kw: Any) -> ShipgateError:
    """The exception for a code: its subclass (e.g. :class:`NotFound`), or
    :class:`ShipgateError` for OK or a number outside the enum."""
    cls = _BY_CODE.get(int(code))
    if cls is None:
        return ShipgateError(code, message, **kw)
    return cls(message, **kw)
