"""The contract's methods, read from the generated service descriptor."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Dict, Optional, Type

from google.protobuf.message import Message

from ._gen import policy
from ._gen.shipgate.v1 import shipgate_pb2

SERVICE = "shipgate.v1.Shipgate"

#: methods retried after the request went out: they change nothing upstream
#: (proto/shipgate/v1/client_policy.json)
IDEMPOTENT = policy.IDEMPOTENT_METHODS


@dataclass(frozen=True)
class Method:
    name: str  # "Track"
    full: str  # "/shipgate.v1.Shipgate/Track"
    request_type: Type[Message]
    response_type: Type[Message]
    idempotent: bool


def _table() -> Dict[str, Method]:
    svc = shipgate_pb2.DESCRIPTOR.services_by_name["Shipgate"]
    out = {}
    for m in svc.methods:
        out[m.name] = Method(
            name=m.name,
            full=f"/{svc.full_name}/{m.name}",
            request_type=getattr(shipgate_pb2, m.input_type.name),
            response_type=getattr(shipgate_pb2, m.output_type.name),
            idempotent=m.name in IDEMPOTENT,
        )
    return out


METHODS: Dict[str, Method] = _table()

TRACK = METHODS["Track"].full
GET_ORDER = METHODS["GetOrder"].full
CREATE_ORDER = METHODS["CreateOrder"].full
HEALTH = METHODS["Health"].full

# "/package.Service/Method" of a method this client does not know: passed through as is
_FOREIGN = re.compile(r"^/[^/]+/[^/]+$")


def lookup(name: str) -> Optional[Method]:
    """A method of the contract by "Track", "shipgate.v1.Shipgate.Track" or
    "/shipgate.v1.Shipgate/Track"; None when unknown."""
    if name in METHODS:
        return METHODS[name]
    for prefix in (f"/{SERVICE}/", f"{SERVICE}."):
        if name.startswith(prefix):
            return METHODS.get(name[len(prefix):])
    return None


def is_foreign(name: str) -> bool:
    """A well-formed gRPC-form name that is not the contract's."""
    return bool(_FOREIGN.match(name)) and lookup(name) is None


def is_idempotent(name: str) -> bool:
    m = lookup(name)
    return m is not None and m.idempotent
