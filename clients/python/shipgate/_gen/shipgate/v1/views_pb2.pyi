from shipgate._gen.shipgate.v1 import rpc_pb2 as _rpc_pb2
from shipgate._gen.shipgate.v1 import shipgate_pb2 as _shipgate_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class TrackCall(_message.Message):
    __slots__ = ("method", "request_id", "deadline_ms", "metadata", "idempotency_key", "payload")
    class MetadataEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    METHOD_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    DEADLINE_MS_FIELD_NUMBER: _ClassVar[int]
    METADATA_FIELD_NUMBER: _ClassVar[int]
    IDEMPOTENCY_KEY_FIELD_NUMBER: _ClassVar[int]
    PAYLOAD_FIELD_NUMBER: _ClassVar[int]
    method: str
    request_id: str
    deadline_ms: int
    metadata: _containers.ScalarMap[str, str]
    idempotency_key: str
    payload: _shipgate_pb2.TrackRequest
    def __init__(self, method: _Optional[str] = ..., request_id: _Optional[str] = ..., deadline_ms: _Optional[int] = ..., metadata: _Optional[_Mapping[str, str]] = ..., idempotency_key: _Optional[str] = ..., payload: _Optional[_Union[_shipgate_pb2.TrackRequest, _Mapping]] = ...) -> None: ...

class TrackResult(_message.Message):
    __slots__ = ("request_id", "status", "payload")
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    PAYLOAD_FIELD_NUMBER: _ClassVar[int]
    request_id: str
    status: _rpc_pb2.Status
    payload: _shipgate_pb2.TrackResponse
    def __init__(self, request_id: _Optional[str] = ..., status: _Optional[_Union[_rpc_pb2.Status, _Mapping]] = ..., payload: _Optional[_Union[_shipgate_pb2.TrackResponse, _Mapping]] = ...) -> None: ...

class GetOrderCall(_message.Message):
    __slots__ = ("method", "request_id", "deadline_ms", "metadata", "idempotency_key", "payload")
    class MetadataEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    METHOD_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    DEADLINE_MS_FIELD_NUMBER: _ClassVar[int]
    METADATA_FIELD_NUMBER: _ClassVar[int]
    IDEMPOTENCY_KEY_FIELD_NUMBER: _ClassVar[int]
    PAYLOAD_FIELD_NUMBER: _ClassVar[int]
    method: str
    request_id: str
    deadline_ms: int
    metadata: _containers.ScalarMap[str, str]
    idempotency_key: str
    payload: _shipgate_pb2.GetOrderRequest
    def __init__(self, method: _Optional[str] = ..., request_id: _Optional[str] = ..., deadline_ms: _Optional[int] = ..., metadata: _Optional[_Mapping[str, str]] = ..., idempotency_key: _Optional[str] = ..., payload: _Optional[_Union[_shipgate_pb2.GetOrderRequest, _Mapping]] = ...) -> None: ...

class GetOrderResult(_message.Message):
    __slots__ = ("request_id", "status", "payload")
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    PAYLOAD_FIELD_NUMBER: _ClassVar[int]
    request_id: str
    status: _rpc_pb2.Status
    payload: _shipgate_pb2.GetOrderResponse
    def __init__(self, request_id: _Optional[str] = ..., status: _Optional[_Union[_rpc_pb2.Status, _Mapping]] = ..., payload: _Optional[_Union[_shipgate_pb2.GetOrderResponse, _Mapping]] = ...) -> None: ...

class CreateOrderCall(_message.Message):
    __slots__ = ("method", "request_id", "deadline_ms", "metadata", "idempotency_key", "payload")
    class MetadataEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    METHOD_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    DEADLINE_MS_FIELD_NUMBER: _ClassVar[int]
    METADATA_FIELD_NUMBER: _ClassVar[int]
    IDEMPOTENCY_KEY_FIELD_NUMBER: _ClassVar[int]
    PAYLOAD_FIELD_NUMBER: _ClassVar[int]
    method: str
    request_id: str
    deadline_ms: int
    metadata: _containers.ScalarMap[str, str]
    idempotency_key: str
    payload: _shipgate_pb2.CreateOrderRequest
    def __init__(self, method: _Optional[str] = ..., request_id: _Optional[str] = ..., deadline_ms: _Optional[int] = ..., metadata: _Optional[_Mapping[str, str]] = ..., idempotency_key: _Optional[str] = ..., payload: _Optional[_Union[_shipgate_pb2.CreateOrderRequest, _Mapping]] = ...) -> None: ...

class CreateOrderResult(_message.Message):
    __slots__ = ("request_id", "status", "payload")
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    PAYLOAD_FIELD_NUMBER: _ClassVar[int]
    request_id: str
    status: _rpc_pb2.Status
    payload: _shipgate_pb2.CreateOrderResponse
    def __init__(self, request_id: _Optional[str] = ..., status: _Optional[_Union[_rpc_pb2.Status, _Mapping]] = ..., payload: _Optional[_Union[_shipgate_pb2.CreateOrderResponse, _Mapping]] = ...) -> None: ...

class HealthCall(_message.Message):
    __slots__ = ("method", "request_id", "deadline_ms", "metadata", "idempotency_key", "payload")
    class MetadataEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    METHOD_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    DEADLINE_MS_FIELD_NUMBER: _ClassVar[int]
    METADATA_FIELD_NUMBER: _ClassVar[int]
    IDEMPOTENCY_KEY_FIELD_NUMBER: _ClassVar[int]
    PAYLOAD_FIELD_NUMBER: _ClassVar[int]
    method: str
    request_id: str
    deadline_ms: int
    metadata: _containers.ScalarMap[str, str]
    idempotency_key: str
    payload: _shipgate_pb2.HealthRequest
    def __init__(self, method: _Optional[str] = ..., request_id: _Optional[str] = ..., deadline_ms: _Optional[int] = ..., metadata: _Optional[_Mapping[str, str]] = ..., idempotency_key: _Optional[str] = ..., payload: _Optional[_Union[_shipgate_pb2.HealthRequest, _Mapping]] = ...) -> None: ...

class HealthResult(_message.Message):
    __slots__ = ("request_id", "status", "payload")
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    PAYLOAD_FIELD_NUMBER: _ClassVar[int]
    request_id: str
    status: _rpc_pb2.Status
    payload: _shipgate_pb2.HealthResponse
    def __init__(self, request_id: _Optional[str] = ..., status: _Optional[_Union[_rpc_pb2.Status, _Mapping]] = ..., payload: _Optional[_Union[_shipgate_pb2.HealthResponse, _Mapping]] = ...) -> None: ...
