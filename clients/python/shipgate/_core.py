"""What the synchronous and asynchronous clients share: options, the envelope, the retry
policy, reply decoding. No I/O here."""

from __future__ import annotations

import math
import os
import random
import re
import secrets
import time
from dataclasses import dataclass
from typing import Any, Iterable, Mapping, Optional, Tuple, Type, Union
from urllib.parse import urlsplit

from google.protobuf import json_format
from google.protobuf.message import DecodeError, Message

from . import _methods
from ._gen import policy
from ._gen.shipgate.v1 import rpc_pb2, shipgate_pb2
from .errors import Code, ShipgateError, error_for

# the defaults, the idempotent methods, the local reasons and the retry rule come from
# proto/shipgate/v1/client_policy.json, generated into _gen/policy.py
DEFAULT_ADDRESS = "tcp://127.0.0.1:7400"
DEFAULT_DEADLINE_MS = policy.DEFAULT_DEADLINE_MS
DEFAULT_MAX_REPLY_SIZE = policy.DEFAULT_MAX_REPLY_SIZE
DEFAULT_CONNECT_TIMEOUT_MS = policy.DEFAULT_CONNECT_TIMEOUT_MS
DEFAULT_MAX_ATTEMPTS = policy.DEFAULT_MAX_ATTEMPTS
DEFAULT_BACKOFF_BASE_MS = policy.DEFAULT_BACKOFF_BASE_MS
DEFAULT_BACKOFF_CAP_MS = policy.DEFAULT_BACKOFF_CAP_MS
DEFAULT_ATTEMPT_TIMEOUT_MS = policy.DEFAULT_ATTEMPT_TIMEOUT_MS
RECONNECT_MIN_MS = policy.DEFAULT_RECONNECT_MIN_MS
RECONNECT_MAX_MS = policy.DEFAULT_RECONNECT_MAX_MS
INT32_MAX = 2**31 - 1

MetadataArg = Union[None, Mapping[str, str], Iterable[Tuple[str, str]]]
RequestArg = Union[None, Message, bytes, Mapping[str, Any]]

_KEY = re.compile(r"^[a-z0-9][a-z0-9._-]*$")


def is_tls_url(url: str) -> bool:
    """A URL of nng's TLS transport: tls+tcp://, tls+tcp4://, tls+tcp6://."""
    return url.split("://", 1)[0].lower().startswith("tls+")


def url_host(url: str) -> Optional[str]:
    """The host of an nng URL (IPv6 without its brackets), or None."""
    try:
        return urlsplit(url).hostname or None
    except ValueError:
        return None


def now_ms() -> float:
    return time.monotonic() * 1000.0


def local_error(code: Code, reason: str, message: str, retryable: bool = False) -> ShipgateError:
    return error_for(code, message, reason=reason, retryable=retryable, local=True)


def invalid(message: str) -> ShipgateError:
    return local_error(Code.INVALID_ARGUMENT, policy.REASON_CLIENT_INVALID_ARGUMENT, message)


@dataclass(frozen=True)
class Options:
    """A client's configuration, checked and with the defaults filled in."""

    addresses: Tuple[str, ...]
    default_deadline_ms: int
    max_reply_size: int
    connect_timeout_ms: int
    max_attempts: int
    backoff_base_ms: int
    backoff_cap_ms: int
    attempt_timeout_ms: int
    # TLS, for tls+tcp:// addresses (the C client's shipgate_tls_opts): the PEM CA bundle the
    # gateway's certificate must chain to (required with such an address), an optional client
    # certificate and its key (together), the name the certificate must carry (None: each
    # URL's host). The gateway's certificate and name are always verified.
    ca_file: Optional[str] = None
    cert_file: Optional[str] = None
    key_file: Optional[str] = None
    server_name: Optional[str] = None

    @property
    def tls(self) -> bool:
        """Some address is a tls+tcp:// one."""
        return any(is_tls_url(a) for a in self.addresses)

    @classmethod
    def make(
        cls,
        addresses: Union[None, str, Iterable[str]] = None,
        *,
        default_deadline_ms: int = DEFAULT_DEADLINE_MS,
        max_reply_size: int = DEFAULT_MAX_REPLY_SIZE,
        connect_timeout_ms: int = DEFAULT_CONNECT_TIMEOUT_MS,
        max_attempts: int = DEFAULT_MAX_ATTEMPTS,
        backoff_base_ms: int = DEFAULT_BACKOFF_BASE_MS,
        backoff_cap_ms: int = DEFAULT_BACKOFF_CAP_MS,
        attempt_timeout_ms: int = DEFAULT_ATTEMPT_TIMEOUT_MS,
        ca_file: Union[None, str, "os.PathLike[str]"] = None,
        cert_file: Union[None, str, "os.PathLike[str]"] = None,
        key_file: Union[None, str, "os.PathLike[str]"] = None,
        server_name: Optional[str] = None,
    ) -> "Options":
        if addresses is None:
            addrs: Tuple[str, ...] = (DEFAULT_ADDRESS,)
        elif isinstance(addresses, str):
            addrs = (addresses,)
        else:
            addrs = tuple(addresses)
        if not addrs:
            addrs = (DEFAULT_ADDRESS,)
        for a in addrs:
            if not isinstance(a, str) or "://" not in a:
                raise ValueError(f"not an nng URL (tcp://, tls+tcp://, ipc://, inproc://): {a!r}")

        def positive(name: str, v: Any, allow_zero: bool = False) -> int:
            if isinstance(v, bool) or not isinstance(v, int) or v < 0 or (v == 0 and not allow_zero):
                raise ValueError(f"{name} must be a {'non-negative' if allow_zero else 'positive'} int, not {v!r}")
            return v

        def path(name: str, v: Any) -> Optional[str]:
            if v is None:
                return None
            if isinstance(v, os.PathLike):
                v = os.fspath(v)
            if not isinstance(v, str) or not v:
                raise ValueError(f"{name} must be a file path (str or os.PathLike), not {v!r}")
            return v

        ca, cert, key = path("ca_file", ca_file), path("cert_file", cert_file), path("key_file", key_file)
        if (cert is None) != (key is None):
            given, missing = ("cert_file", "key_file") if key is None else ("key_file", "cert_file")
            raise ValueError(f"{given} is given without {missing}: a client certificate needs "
                             "both cert_file (PEM certificate) and key_file (its PEM private key)")
        if server_name is not None and (not isinstance(server_name, str) or not server_name):
            raise ValueError(f"server_name must be a non-empty str, not {server_name!r}")
        for a in addrs:
            if is_tls_url(a):
                if ca is None:
                    raise ValueError(
                        f"{a!r} is a TLS address: give ca_file, the PEM CA bundle the gateway's "
                        "certificate must chain to (it is always verified)")
                if server_name is None and url_host(a) is None:
                    raise ValueError(f"{a!r} has no host to check the gateway's certificate "
                                     "against: give server_name")

        o = cls(
            addresses=addrs,
            default_deadline_ms=min(positive("default_deadline_ms", default_deadline_ms), INT32_MAX),
            max_reply_size=positive("max_reply_size", max_reply_size),
            connect_timeout_ms=positive("connect_timeout_ms", connect_timeout_ms),
            max_attempts=positive("max_attempts", max_attempts),
            backoff_base_ms=positive("backoff_base_ms", backoff_base_ms, True),
            backoff_cap_ms=positive("backoff_cap_ms", backoff_cap_ms, True),
            attempt_timeout_ms=positive("attempt_timeout_ms", attempt_timeout_ms, True),
            ca_file=ca,
            cert_file=cert,
            key_file=key,
            server_name=server_name,
        )
        if o.backoff_cap_ms < o.backoff_base_ms:
            object.__setattr__(o, "backoff_cap_ms", o.backoff_base_ms)
        return o

    def backoff_ms(self, retry: int, rng: Any = random) -> float:
        """Backoff before retry number ``retry`` (1-based): base * 2^(retry-1), capped, then
        jittered uniformly into [d/2, d]."""
        d = float(self.backoff_base_ms)
        for _ in range(1, retry):
            if d >= self.backoff_cap_ms:
                break
            d *= 2
        d = min(d, float(self.backoff_cap_ms))
        return d / 2 + rng.uniform(0, d / 2)


@dataclass
class PreparedCall:
    """One call, ready for its attempts."""

    method: str  # full gRPC-form name
    envelope: Any  # rpc_pb2.RpcRequest without deadline_ms
    response_type: Optional[Type[Message]]  # None: return the payload bytes
    kind: str  # policy.IDEMPOTENT, KEYED or OTHER: what the retry rule sees
    deadline: float  # end of the budget, now_ms() clock
    request_id: str


def _encode_request(req: RequestArg, req_type: Optional[Type[Message]]) -> bytes:
    if req is None:
        return b"" if req_type is None else req_type().SerializeToString()
    if isinstance(req, (bytes, bytearray, memoryview)):
        return bytes(req)
    if isinstance(req, Message):
        if req_type is not None and req.DESCRIPTOR.full_name != req_type.DESCRIPTOR.full_name:
            raise invalid(
                f"this method takes {req_type.DESCRIPTOR.full_name}, not {req.DESCRIPTOR.full_name}"
            )
        return req.SerializeToString()
    if isinstance(req, Mapping):
        if req_type is None:
            raise invalid("a dict request needs a method of the contract (or pass the message)")
        try:
            return json_format.ParseDict(req, req_type()).SerializeToString()
        except json_format.ParseError as e:
            raise invalid(f"request is not a {req_type.DESCRIPTOR.full_name}: {e}") from None
    raise invalid(f"request must be a protobuf message, a dict or bytes, not {type(req).__name__}")


def _metadata_pairs(metadata: MetadataArg) -> Iterable[Tuple[str, str]]:
    if metadata is None:
        return ()
    items = metadata.items() if isinstance(metadata, Mapping) else metadata
    out = []
    for kv in items:
        try:
            k, v = kv
        except (TypeError, ValueError):
            raise invalid("metadata must be a mapping or (key, value) pairs") from None
        if not isinstance(k, str) or not _KEY.match(k):
            raise invalid(f"metadata key {k!r} is not lower-case [a-z0-9._-]")
        if not isinstance(v, str):
            raise invalid(f"metadata value of {k!r} must be a str")
        out.append((k, v))
    return out


def prepare(
    opts: Options,
    method: str,
    request: RequestArg,
    response_type: Optional[Type[Message]],
    *,
    deadline_ms: Optional[int],
    metadata: MetadataArg,
    idempotency_key: Optional[str],
    request_id: Optional[str],
) -> PreparedCall:
    """Checks the arguments and builds the envelope. The budget starts here. Raises a local
    ShipgateError (CLIENT_INVALID_ARGUMENT) for bad arguments."""
    start = now_ms()
    if request_id is None or request_id == "":
        request_id = secrets.token_hex(8)
    try:
        if not isinstance(request_id, str):
            raise invalid("request_id must be a str")
        if deadline_ms is None or deadline_ms == 0:
            budget = opts.default_deadline_ms
        elif isinstance(deadline_ms, bool) or not isinstance(deadline_ms, (int, float)):
            raise invalid(f"deadline_ms must be a number of milliseconds, not {deadline_ms!r}")
        else:
            budget = min(deadline_ms, INT32_MAX)
        return _prepare(opts, method, request, response_type, start + budget, metadata,
                        idempotency_key, request_id)
    except ShipgateError as e:
        e.request_id = request_id
        raise


def _prepare(opts, method, request, response_type, deadline, metadata, idempotency_key,
             request_id) -> PreparedCall:
    if not isinstance(method, str) or not method:
        raise invalid("no method given")
    m = _methods.lookup(method)
    if m is not None:
        full = m.full
        if response_type is None:
            response_type = m.response_type
        elif response_type.DESCRIPTOR.full_name != m.response_type.DESCRIPTOR.full_name:
            raise invalid(
                f"{full} returns {m.response_type.DESCRIPTOR.full_name}, "
                f"not {response_type.DESCRIPTOR.full_name}"
            )
        payload = _encode_request(request, m.request_type)
        kind = policy.IDEMPOTENT if m.idempotent else policy.OTHER
    elif _methods.is_foreign(method):
        full = method  # a method this client does not know: passed through
        payload = _encode_request(request, None)
        kind = policy.OTHER
    else:
        raise invalid(f"unknown method {method[:100]!r}")

    env = rpc_pb2.RpcRequest(method=full, request_id=request_id, payload=payload)
    if idempotency_key is not None and idempotency_key != "":
        if not isinstance(idempotency_key, str):
            raise invalid("idempotency_key must be a str")
        env.idempotency_key = idempotency_key
        if kind == policy.OTHER:
            kind = policy.KEYED  # the gateway deduplicates by the key
    for k, v in _metadata_pairs(metadata):
        env.metadata[k] = v
    return PreparedCall(
        method=full,
        envelope=env,
        response_type=response_type,
        kind=kind,
        deadline=deadline,
        request_id=request_id,
    )


def remaining_ms(call: PreparedCall) -> int:
    """Whole milliseconds left of the call's budget (<= 0: spent)."""
    return math.floor(call.deadline - now_ms())


def decode_reply(call: PreparedCall, data: bytes, url: str, max_reply_size: int):
    """(RpcReply, None) for a usable reply (its status may be any code), else
    (None, local error). Over-size or undecodable replies are never retried."""
    return decode_reply_of(call.request_id, data, url, max_reply_size)


def decode_reply_of(request_id: str, data: bytes, url: str, max_reply_size: int):
    """decode_reply for a request sent with request_id (a call's, or its Health probe's)."""
    if len(data) > max_reply_size:
        return None, local_error(
            Code.RESOURCE_EXHAUSTED,
            policy.REASON_TRANSPORT_REPLY_TOO_LARGE,
            f"reply of {len(data)} bytes from {url} exceeds max_reply_size {max_reply_size}",
        )
    rep = rpc_pb2.RpcReply()
    try:
        rep.ParseFromString(data)
    except (DecodeError, ValueError, RuntimeError):
        rep = None
    if rep is None or not rep.HasField("status"):
        return None, local_error(
            Code.INTERNAL,
            policy.REASON_CLIENT_BAD_REPLY,
            f"reply from {url} is not a shipgate.v1.RpcReply with a status",
        )
    if rep.request_id and rep.request_id != request_id:
        return None, local_error(
            Code.INTERNAL,
            policy.REASON_CLIENT_BAD_REPLY,
            f"reply from {url} answers request {rep.request_id[:64]}, not {request_id}",
        )
    return rep, None


def decode_payload(call: PreparedCall, rep: Any):
    """The OK reply's response: a message of call.response_type, or the bytes."""
    if call.response_type is None:
        return bytes(rep.payload)
    out = call.response_type()
    try:
        out.ParseFromString(rep.payload)
    except (DecodeError, ValueError, RuntimeError):
        raise local_error(
            Code.INTERNAL,
            policy.REASON_CLIENT_BAD_REPLY,
            f"reply payload is not a {call.response_type.DESCRIPTOR.full_name}",
        ) from None
    return out


def sent_deadline_ms(budget_ms: int) -> int:
    """The envelope's deadline_ms for an attempt that waits budget_ms: a little less
    (policy.DEFAULT_REPLY_MARGIN_MS), so that a gateway keeping its deadline answers first."""
    return policy.sent_deadline_ms(budget_ms)


def decide(call: PreparedCall, err: ShipgateError, never_sent: bool, fleet: bool = False) -> str:
    """The policy's retry rule for a failed attempt: policy.RETRY, STOP or OUTCOME_UNKNOWN
    (attempts and budget are checked apart). In short: any method is retried when the request
    provably never left; idempotent methods after UNAVAILABLE and after the client's own
    TRANSPORT_TIMEOUT; keyed calls (CreateOrder) after the gateway's UNAVAILABLE, and after a
    lost connection or a timeout only when the attempt went to a gateway of a fleet (``fleet``:
    its connection's Health said scope "fleet" with a fleet_id); a DEADLINE_EXCEEDED from the
    gateway never; any other call that is not idempotent whose request went out and whose
    connection broke or timed out ends with UNKNOWN / OUTCOME_UNKNOWN."""
    return policy.decide(call.kind, not never_sent, err.local, int(err.code), err.reason, fleet)


def fleet_of_health(payload: bytes) -> Optional[str]:
    """The fleet a HealthResponse (encoded) reports: its fleet_id when idempotency_scope is
    "fleet" and fleet_id is set, else None (scope "node", an older gateway, a bad payload)."""
    h = shipgate_pb2.HealthResponse()
    try:
        h.ParseFromString(payload)
    except (DecodeError, ValueError, RuntimeError):
        return None
    if h.idempotency_scope == "fleet" and h.fleet_id:
        return h.fleet_id
    return None


def describe_fleet(fleet: Optional[str]) -> str:
    return f"fleet {fleet!r}" if fleet is not None else "no fleet"


def outcome_unknown(call: PreparedCall, err: ShipgateError) -> ShipgateError:
    """The UNKNOWN / OUTCOME_UNKNOWN error that replaces a transport failure after a call that
    is not idempotent went out."""
    why = ""
    if call.kind == policy.KEYED:
        why = " to a gateway not known to share its idempotency keys with a fleet,"
    return local_error(
        Code.UNKNOWN,
        policy.REASON_OUTCOME_UNKNOWN,
        f"{call.method} went out{why} and no answer came back: {err.message} ({err.reason}); the "
        "gateway may have acted on it, so it is not retried (check with the provider before "
        "trying again)",
    )


def fleet_mismatch(call: PreparedCall, first_url: str, fleet: Optional[str], url: str,
                   other: Optional[str]) -> ShipgateError:
    """UNKNOWN / OUTCOME_UNKNOWN: a keyed call that may have reached first_url (of ``fleet``)
    would have gone on to url, whose Health reports ``other``; it is not sent there."""
    return local_error(
        Code.UNKNOWN,
        policy.REASON_OUTCOME_UNKNOWN,
        f"{call.method} went to {first_url} ({describe_fleet(fleet)}) and no answer came back; "
        f"the next address, {url}, reports {describe_fleet(other)}, so it does not share that "
        "gateway's idempotency keys and the call is not sent there: the first gateway may have "
        "acted on it (check with the provider before trying again)",
    )


def settle(call: PreparedCall, err: ShipgateError, first_url: Optional[str],
           fleet: Optional[str], last_url: Optional[str]) -> ShipgateError:
    """The final failure of a call. Once an attempt of a keyed call may have been sent (it went
    to first_url, of ``fleet``, and no answer came back), a failure that does not settle it
    (local, or a gateway code in policy.UNSETTLED_CODES) becomes UNKNOWN / OUTCOME_UNKNOWN; a
    gateway's answer that settles it (its own OUTCOME_UNKNOWN included) is reported as is."""
    if first_url is None or not policy.unsettled(err.local, int(err.code)):
        return err
    who = "the client" if err.local else "the gateway"
    at = f" at {last_url}" if last_url else ""
    return local_error(
        Code.UNKNOWN,
        policy.REASON_OUTCOME_UNKNOWN,
        f"{call.method} went to {first_url} ({describe_fleet(fleet)}) and no answer came back; "
        f"the call then ended{at} with {err.code_name} from {who}: {err.message}"
        f"{f' ({err.reason})' if err.reason else ''}; the first gateway may have acted on it "
        "(check with the provider before trying again)",
    )
