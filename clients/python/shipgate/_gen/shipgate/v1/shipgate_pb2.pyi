from google.protobuf import wrappers_pb2 as _wrappers_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class Provider(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    PROVIDER_UNSPECIFIED: _ClassVar[Provider]
    PROVIDER_BOSCOD: _ClassVar[Provider]
    PROVIDER_BOSONLINE: _ClassVar[Provider]
    PROVIDER_BITESHIP: _ClassVar[Provider]
    PROVIDER_FUUFFY: _ClassVar[Provider]

class TrackingStatus(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    TRACKING_STATUS_UNKNOWN: _ClassVar[TrackingStatus]
    TRACKING_STATUS_PENDING: _ClassVar[TrackingStatus]
    TRACKING_STATUS_INFO_RECEIVED: _ClassVar[TrackingStatus]
    TRACKING_STATUS_PICKUP_IN_PROGRESS: _ClassVar[TrackingStatus]
    TRACKING_STATUS_PICKED_UP: _ClassVar[TrackingStatus]
    TRACKING_STATUS_IN_TRANSIT: _ClassVar[TrackingStatus]
    TRACKING_STATUS_OUT_FOR_DELIVERY: _ClassVar[TrackingStatus]
    TRACKING_STATUS_AVAILABLE_FOR_PICKUP: _ClassVar[TrackingStatus]
    TRACKING_STATUS_DELIVERY_FAILED: _ClassVar[TrackingStatus]
    TRACKING_STATUS_DELIVERED: _ClassVar[TrackingStatus]
    TRACKING_STATUS_ON_HOLD: _ClassVar[TrackingStatus]
    TRACKING_STATUS_EXCEPTION: _ClassVar[TrackingStatus]
    TRACKING_STATUS_RETURNING: _ClassVar[TrackingStatus]
    TRACKING_STATUS_RETURNED: _ClassVar[TrackingStatus]
    TRACKING_STATUS_CANCELLED: _ClassVar[TrackingStatus]

class OffsetSource(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    OFFSET_SOURCE_UNSPECIFIED: _ClassVar[OffsetSource]
    OFFSET_SOURCE_EPOCH: _ClassVar[OffsetSource]
    OFFSET_SOURCE_TEXT: _ClassVar[OffsetSource]
    OFFSET_SOURCE_PROVIDER_DEFAULT: _ClassVar[OffsetSource]
    OFFSET_SOURCE_CONFIG: _ClassVar[OffsetSource]

class PickupMethod(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    PICKUP_METHOD_PICKUP: _ClassVar[PickupMethod]
    PICKUP_METHOD_DROP_OFF: _ClassVar[PickupMethod]

class PaymentType(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    PAYMENT_TYPE_UNSPECIFIED: _ClassVar[PaymentType]
    PAYMENT_TYPE_COD: _ClassVar[PaymentType]
    PAYMENT_TYPE_BANK: _ClassVar[PaymentType]
PROVIDER_UNSPECIFIED: Provider
PROVIDER_BOSCOD: Provider
PROVIDER_BOSONLINE: Provider
PROVIDER_BITESHIP: Provider
PROVIDER_FUUFFY: Provider
TRACKING_STATUS_UNKNOWN: TrackingStatus
TRACKING_STATUS_PENDING: TrackingStatus
TRACKING_STATUS_INFO_RECEIVED: TrackingStatus
TRACKING_STATUS_PICKUP_IN_PROGRESS: TrackingStatus
TRACKING_STATUS_PICKED_UP: TrackingStatus
TRACKING_STATUS_IN_TRANSIT: TrackingStatus
TRACKING_STATUS_OUT_FOR_DELIVERY: TrackingStatus
TRACKING_STATUS_AVAILABLE_FOR_PICKUP: TrackingStatus
TRACKING_STATUS_DELIVERY_FAILED: TrackingStatus
TRACKING_STATUS_DELIVERED: TrackingStatus
TRACKING_STATUS_ON_HOLD: TrackingStatus
TRACKING_STATUS_EXCEPTION: TrackingStatus
TRACKING_STATUS_RETURNING: TrackingStatus
TRACKING_STATUS_RETURNED: TrackingStatus
TRACKING_STATUS_CANCELLED: TrackingStatus
OFFSET_SOURCE_UNSPECIFIED: OffsetSource
OFFSET_SOURCE_EPOCH: OffsetSource
OFFSET_SOURCE_TEXT: OffsetSource
OFFSET_SOURCE_PROVIDER_DEFAULT: OffsetSource
OFFSET_SOURCE_CONFIG: OffsetSource
PICKUP_METHOD_PICKUP: PickupMethod
PICKUP_METHOD_DROP_OFF: PickupMethod
PAYMENT_TYPE_UNSPECIFIED: PaymentType
PAYMENT_TYPE_COD: PaymentType
PAYMENT_TYPE_BANK: PaymentType

class TrackingEvent(_message.Message):
    __slots__ = ("status", "sub_status", "raw_code", "raw_text", "time_unix", "time_text", "utc_offset_seconds", "offset_source", "location", "description", "pod_photo_url", "service_type")
    STATUS_FIELD_NUMBER: _ClassVar[int]
    SUB_STATUS_FIELD_NUMBER: _ClassVar[int]
    RAW_CODE_FIELD_NUMBER: _ClassVar[int]
    RAW_TEXT_FIELD_NUMBER: _ClassVar[int]
    TIME_UNIX_FIELD_NUMBER: _ClassVar[int]
    TIME_TEXT_FIELD_NUMBER: _ClassVar[int]
    UTC_OFFSET_SECONDS_FIELD_NUMBER: _ClassVar[int]
    OFFSET_SOURCE_FIELD_NUMBER: _ClassVar[int]
    LOCATION_FIELD_NUMBER: _ClassVar[int]
    DESCRIPTION_FIELD_NUMBER: _ClassVar[int]
    POD_PHOTO_URL_FIELD_NUMBER: _ClassVar[int]
    SERVICE_TYPE_FIELD_NUMBER: _ClassVar[int]
    status: TrackingStatus
    sub_status: str
    raw_code: _wrappers_pb2.StringValue
    raw_text: str
    time_unix: int
    time_text: str
    utc_offset_seconds: int
    offset_source: OffsetSource
    location: str
    description: str
    pod_photo_url: _wrappers_pb2.StringValue
    service_type: str
    def __init__(self, status: _Optional[_Union[TrackingStatus, str]] = ..., sub_status: _Optional[str] = ..., raw_code: _Optional[_Union[_wrappers_pb2.StringValue, _Mapping]] = ..., raw_text: _Optional[str] = ..., time_unix: _Optional[int] = ..., time_text: _Optional[str] = ..., utc_offset_seconds: _Optional[int] = ..., offset_source: _Optional[_Union[OffsetSource, str]] = ..., location: _Optional[str] = ..., description: _Optional[str] = ..., pod_photo_url: _Optional[_Union[_wrappers_pb2.StringValue, _Mapping]] = ..., service_type: _Optional[str] = ...) -> None: ...

class CodReconciliation(_message.Message):
    __slots__ = ("order_time_unix", "reconciled_time_unix", "reconciled")
    ORDER_TIME_UNIX_FIELD_NUMBER: _ClassVar[int]
    RECONCILED_TIME_UNIX_FIELD_NUMBER: _ClassVar[int]
    RECONCILED_FIELD_NUMBER: _ClassVar[int]
    order_time_unix: _wrappers_pb2.Int64Value
    reconciled_time_unix: _wrappers_pb2.Int64Value
    reconciled: _wrappers_pb2.BoolValue
    def __init__(self, order_time_unix: _Optional[_Union[_wrappers_pb2.Int64Value, _Mapping]] = ..., reconciled_time_unix: _Optional[_Union[_wrappers_pb2.Int64Value, _Mapping]] = ..., reconciled: _Optional[_Union[_wrappers_pb2.BoolValue, _Mapping]] = ...) -> None: ...

class Tracking(_message.Message):
    __slots__ = ("provider", "order_id", "tracking_number", "status", "terminal", "raw_status", "status_text", "last_update_unix", "events", "courier", "origin_country", "destination_country", "cod")
    PROVIDER_FIELD_NUMBER: _ClassVar[int]
    ORDER_ID_FIELD_NUMBER: _ClassVar[int]
    TRACKING_NUMBER_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    TERMINAL_FIELD_NUMBER: _ClassVar[int]
    RAW_STATUS_FIELD_NUMBER: _ClassVar[int]
    STATUS_TEXT_FIELD_NUMBER: _ClassVar[int]
    LAST_UPDATE_UNIX_FIELD_NUMBER: _ClassVar[int]
    EVENTS_FIELD_NUMBER: _ClassVar[int]
    COURIER_FIELD_NUMBER: _ClassVar[int]
    ORIGIN_COUNTRY_FIELD_NUMBER: _ClassVar[int]
    DESTINATION_COUNTRY_FIELD_NUMBER: _ClassVar[int]
    COD_FIELD_NUMBER: _ClassVar[int]
    provider: Provider
    order_id: str
    tracking_number: str
    status: TrackingStatus
    terminal: bool
    raw_status: _wrappers_pb2.StringValue
    status_text: str
    last_update_unix: int
    events: _containers.RepeatedCompositeFieldContainer[TrackingEvent]
    courier: str
    origin_country: str
    destination_country: str
    cod: CodReconciliation
    def __init__(self, provider: _Optional[_Union[Provider, str]] = ..., order_id: _Optional[str] = ..., tracking_number: _Optional[str] = ..., status: _Optional[_Union[TrackingStatus, str]] = ..., terminal: _Optional[bool] = ..., raw_status: _Optional[_Union[_wrappers_pb2.StringValue, _Mapping]] = ..., status_text: _Optional[str] = ..., last_update_unix: _Optional[int] = ..., events: _Optional[_Iterable[_Union[TrackingEvent, _Mapping]]] = ..., courier: _Optional[str] = ..., origin_country: _Optional[str] = ..., destination_country: _Optional[str] = ..., cod: _Optional[_Union[CodReconciliation, _Mapping]] = ...) -> None: ...

class TrackRequest(_message.Message):
    __slots__ = ("provider", "order_id", "tracking_number", "bypass_cache")
    PROVIDER_FIELD_NUMBER: _ClassVar[int]
    ORDER_ID_FIELD_NUMBER: _ClassVar[int]
    TRACKING_NUMBER_FIELD_NUMBER: _ClassVar[int]
    BYPASS_CACHE_FIELD_NUMBER: _ClassVar[int]
    provider: Provider
    order_id: str
    tracking_number: str
    bypass_cache: bool
    def __init__(self, provider: _Optional[_Union[Provider, str]] = ..., order_id: _Optional[str] = ..., tracking_number: _Optional[str] = ..., bypass_cache: _Optional[bool] = ...) -> None: ...

class TrackResponse(_message.Message):
    __slots__ = ("tracking", "cache")
    TRACKING_FIELD_NUMBER: _ClassVar[int]
    CACHE_FIELD_NUMBER: _ClassVar[int]
    tracking: Tracking
    cache: CacheInfo
    def __init__(self, tracking: _Optional[_Union[Tracking, _Mapping]] = ..., cache: _Optional[_Union[CacheInfo, _Mapping]] = ...) -> None: ...

class CacheInfo(_message.Message):
    __slots__ = ("hit", "age_ms", "stale")
    HIT_FIELD_NUMBER: _ClassVar[int]
    AGE_MS_FIELD_NUMBER: _ClassVar[int]
    STALE_FIELD_NUMBER: _ClassVar[int]
    hit: bool
    age_ms: int
    stale: bool
    def __init__(self, hit: _Optional[bool] = ..., age_ms: _Optional[int] = ..., stale: _Optional[bool] = ...) -> None: ...

class Coordinate(_message.Message):
    __slots__ = ("latitude", "longitude")
    LATITUDE_FIELD_NUMBER: _ClassVar[int]
    LONGITUDE_FIELD_NUMBER: _ClassVar[int]
    latitude: _wrappers_pb2.DoubleValue
    longitude: _wrappers_pb2.DoubleValue
    def __init__(self, latitude: _Optional[_Union[_wrappers_pb2.DoubleValue, _Mapping]] = ..., longitude: _Optional[_Union[_wrappers_pb2.DoubleValue, _Mapping]] = ...) -> None: ...

class Shipper(_message.Message):
    __slots__ = ("name", "email", "phone", "organization")
    NAME_FIELD_NUMBER: _ClassVar[int]
    EMAIL_FIELD_NUMBER: _ClassVar[int]
    PHONE_FIELD_NUMBER: _ClassVar[int]
    ORGANIZATION_FIELD_NUMBER: _ClassVar[int]
    name: _wrappers_pb2.StringValue
    email: _wrappers_pb2.StringValue
    phone: _wrappers_pb2.StringValue
    organization: _wrappers_pb2.StringValue
    def __init__(self, name: _Optional[_Union[_wrappers_pb2.StringValue, _Mapping]] = ..., email: _Optional[_Union[_wrappers_pb2.StringValue, _Mapping]] = ..., phone: _Optional[_Union[_wrappers_pb2.StringValue, _Mapping]] = ..., organization: _Optional[_Union[_wrappers_pb2.StringValue, _Mapping]] = ...) -> None: ...

class Origin(_message.Message):
    __slots__ = ("contact_name", "contact_phone", "address", "note", "postal_code", "coordinate")
    CONTACT_NAME_FIELD_NUMBER: _ClassVar[int]
    CONTACT_PHONE_FIELD_NUMBER: _ClassVar[int]
    ADDRESS_FIELD_NUMBER: _ClassVar[int]
    NOTE_FIELD_NUMBER: _ClassVar[int]
    POSTAL_CODE_FIELD_NUMBER: _ClassVar[int]
    COORDINATE_FIELD_NUMBER: _ClassVar[int]
    contact_name: _wrappers_pb2.StringValue
    contact_phone: _wrappers_pb2.StringValue
    address: _wrappers_pb2.StringValue
    note: _wrappers_pb2.StringValue
    postal_code: _wrappers_pb2.StringValue
    coordinate: Coordinate
    def __init__(self, contact_name: _Optional[_Union[_wrappers_pb2.StringValue, _Mapping]] = ..., contact_phone: _Optional[_Union[_wrappers_pb2.StringValue, _Mapping]] = ..., address: _Optional[_Union[_wrappers_pb2.StringValue, _Mapping]] = ..., note: _Optional[_Union[_wrappers_pb2.StringValue, _Mapping]] = ..., postal_code: _Optional[_Union[_wrappers_pb2.StringValue, _Mapping]] = ..., coordinate: _Optional[_Union[Coordinate, _Mapping]] = ...) -> None: ...

class ProofOfDelivery(_message.Message):
    __slots__ = ("use", "fee", "note", "link")
    USE_FIELD_NUMBER: _ClassVar[int]
    FEE_FIELD_NUMBER: _ClassVar[int]
    NOTE_FIELD_NUMBER: _ClassVar[int]
    LINK_FIELD_NUMBER: _ClassVar[int]
    use: _wrappers_pb2.BoolValue
    fee: _wrappers_pb2.DoubleValue
    note: _wrappers_pb2.StringValue
    link: _wrappers_pb2.StringValue
    def __init__(self, use: _Optional[_Union[_wrappers_pb2.BoolValue, _Mapping]] = ..., fee: _Optional[_Union[_wrappers_pb2.DoubleValue, _Mapping]] = ..., note: _Optional[_Union[_wrappers_pb2.StringValue, _Mapping]] = ..., link: _Optional[_Union[_wrappers_pb2.StringValue, _Mapping]] = ...) -> None: ...

class CashOnDelivery(_message.Message):
    __slots__ = ("id", "amount", "amount_currency", "fee", "fee_currency", "note", "type")
    ID_FIELD_NUMBER: _ClassVar[int]
    AMOUNT_FIELD_NUMBER: _ClassVar[int]
    AMOUNT_CURRENCY_FIELD_NUMBER: _ClassVar[int]
    FEE_FIELD_NUMBER: _ClassVar[int]
    FEE_CURRENCY_FIELD_NUMBER: _ClassVar[int]
    NOTE_FIELD_NUMBER: _ClassVar[int]
    TYPE_FIELD_NUMBER: _ClassVar[int]
    id: _wrappers_pb2.StringValue
    amount: _wrappers_pb2.DoubleValue
    amount_currency: _wrappers_pb2.StringValue
    fee: _wrappers_pb2.DoubleValue
    fee_currency: _wrappers_pb2.StringValue
    note: _wrappers_pb2.StringValue
    type: _wrappers_pb2.StringValue
    def __init__(self, id: _Optional[_Union[_wrappers_pb2.StringValue, _Mapping]] = ..., amount: _Optional[_Union[_wrappers_pb2.DoubleValue, _Mapping]] = ..., amount_currency: _Optional[_Union[_wrappers_pb2.StringValue, _Mapping]] = ..., fee: _Optional[_Union[_wrappers_pb2.DoubleValue, _Mapping]] = ..., fee_currency: _Optional[_Union[_wrappers_pb2.StringValue, _Mapping]] = ..., note: _Optional[_Union[_wrappers_pb2.StringValue, _Mapping]] = ..., type: _Optional[_Union[_wrappers_pb2.StringValue, _Mapping]] = ...) -> None: ...

class Destination(_message.Message):
    __slots__ = ("contact_name", "contact_phone", "contact_email", "address", "note", "proof_of_delivery", "postal_code", "coordinate", "cash_on_delivery")
    CONTACT_NAME_FIELD_NUMBER: _ClassVar[int]
    CONTACT_PHONE_FIELD_NUMBER: _ClassVar[int]
    CONTACT_EMAIL_FIELD_NUMBER: _ClassVar[int]
    ADDRESS_FIELD_NUMBER: _ClassVar[int]
    NOTE_FIELD_NUMBER: _ClassVar[int]
    PROOF_OF_DELIVERY_FIELD_NUMBER: _ClassVar[int]
    POSTAL_CODE_FIELD_NUMBER: _ClassVar[int]
    COORDINATE_FIELD_NUMBER: _ClassVar[int]
    CASH_ON_DELIVERY_FIELD_NUMBER: _ClassVar[int]
    contact_name: _wrappers_pb2.StringValue
    contact_phone: _wrappers_pb2.StringValue
    contact_email: _wrappers_pb2.StringValue
    address: _wrappers_pb2.StringValue
    note: _wrappers_pb2.StringValue
    proof_of_delivery: ProofOfDelivery
    postal_code: _wrappers_pb2.StringValue
    coordinate: Coordinate
    cash_on_delivery: CashOnDelivery
    def __init__(self, contact_name: _Optional[_Union[_wrappers_pb2.StringValue, _Mapping]] = ..., contact_phone: _Optional[_Union[_wrappers_pb2.StringValue, _Mapping]] = ..., contact_email: _Optional[_Union[_wrappers_pb2.StringValue, _Mapping]] = ..., address: _Optional[_Union[_wrappers_pb2.StringValue, _Mapping]] = ..., note: _Optional[_Union[_wrappers_pb2.StringValue, _Mapping]] = ..., proof_of_delivery: _Optional[_Union[ProofOfDelivery, _Mapping]] = ..., postal_code: _Optional[_Union[_wrappers_pb2.StringValue, _Mapping]] = ..., coordinate: _Optional[_Union[Coordinate, _Mapping]] = ..., cash_on_delivery: _Optional[_Union[CashOnDelivery, _Mapping]] = ...) -> None: ...

class Delivery(_message.Message):
    __slots__ = ("datetime", "datetime_unix", "note", "type", "distance", "distance_unit")
    DATETIME_FIELD_NUMBER: _ClassVar[int]
    DATETIME_UNIX_FIELD_NUMBER: _ClassVar[int]
    NOTE_FIELD_NUMBER: _ClassVar[int]
    TYPE_FIELD_NUMBER: _ClassVar[int]
    DISTANCE_FIELD_NUMBER: _ClassVar[int]
    DISTANCE_UNIT_FIELD_NUMBER: _ClassVar[int]
    datetime: _wrappers_pb2.StringValue
    datetime_unix: _wrappers_pb2.Int64Value
    note: _wrappers_pb2.StringValue
    type: _wrappers_pb2.StringValue
    distance: _wrappers_pb2.DoubleValue
    distance_unit: _wrappers_pb2.StringValue
    def __init__(self, datetime: _Optional[_Union[_wrappers_pb2.StringValue, _Mapping]] = ..., datetime_unix: _Optional[_Union[_wrappers_pb2.Int64Value, _Mapping]] = ..., note: _Optional[_Union[_wrappers_pb2.StringValue, _Mapping]] = ..., type: _Optional[_Union[_wrappers_pb2.StringValue, _Mapping]] = ..., distance: _Optional[_Union[_wrappers_pb2.DoubleValue, _Mapping]] = ..., distance_unit: _Optional[_Union[_wrappers_pb2.StringValue, _Mapping]] = ...) -> None: ...

class Voucher(_message.Message):
    __slots__ = ("id", "name", "value", "type")
    ID_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    VALUE_FIELD_NUMBER: _ClassVar[int]
    TYPE_FIELD_NUMBER: _ClassVar[int]
    id: _wrappers_pb2.StringValue
    name: _wrappers_pb2.StringValue
    value: _wrappers_pb2.DoubleValue
    type: _wrappers_pb2.StringValue
    def __init__(self, id: _Optional[_Union[_wrappers_pb2.StringValue, _Mapping]] = ..., name: _Optional[_Union[_wrappers_pb2.StringValue, _Mapping]] = ..., value: _Optional[_Union[_wrappers_pb2.DoubleValue, _Mapping]] = ..., type: _Optional[_Union[_wrappers_pb2.StringValue, _Mapping]] = ...) -> None: ...

class Insurance(_message.Message):
    __slots__ = ("amount", "amount_currency", "fee", "fee_currency", "note")
    AMOUNT_FIELD_NUMBER: _ClassVar[int]
    AMOUNT_CURRENCY_FIELD_NUMBER: _ClassVar[int]
    FEE_FIELD_NUMBER: _ClassVar[int]
    FEE_CURRENCY_FIELD_NUMBER: _ClassVar[int]
    NOTE_FIELD_NUMBER: _ClassVar[int]
    amount: _wrappers_pb2.DoubleValue
    amount_currency: _wrappers_pb2.StringValue
    fee: _wrappers_pb2.DoubleValue
    fee_currency: _wrappers_pb2.StringValue
    note: _wrappers_pb2.StringValue
    def __init__(self, amount: _Optional[_Union[_wrappers_pb2.DoubleValue, _Mapping]] = ..., amount_currency: _Optional[_Union[_wrappers_pb2.StringValue, _Mapping]] = ..., fee: _Optional[_Union[_wrappers_pb2.DoubleValue, _Mapping]] = ..., fee_currency: _Optional[_Union[_wrappers_pb2.StringValue, _Mapping]] = ..., note: _Optional[_Union[_wrappers_pb2.StringValue, _Mapping]] = ...) -> None: ...

class Courier(_message.Message):
    __slots__ = ("tracking_id", "waybill_id", "company", "history", "link", "name", "phone", "driver_name", "driver_phone", "driver_photo_url", "driver_plate_number", "type", "shipment_fee", "insurance")
    TRACKING_ID_FIELD_NUMBER: _ClassVar[int]
    WAYBILL_ID_FIELD_NUMBER: _ClassVar[int]
    COMPANY_FIELD_NUMBER: _ClassVar[int]
    HISTORY_FIELD_NUMBER: _ClassVar[int]
    LINK_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    PHONE_FIELD_NUMBER: _ClassVar[int]
    DRIVER_NAME_FIELD_NUMBER: _ClassVar[int]
    DRIVER_PHONE_FIELD_NUMBER: _ClassVar[int]
    DRIVER_PHOTO_URL_FIELD_NUMBER: _ClassVar[int]
    DRIVER_PLATE_NUMBER_FIELD_NUMBER: _ClassVar[int]
    TYPE_FIELD_NUMBER: _ClassVar[int]
    SHIPMENT_FEE_FIELD_NUMBER: _ClassVar[int]
    INSURANCE_FIELD_NUMBER: _ClassVar[int]
    tracking_id: _wrappers_pb2.StringValue
    waybill_id: _wrappers_pb2.StringValue
    company: _wrappers_pb2.StringValue
    history: _containers.RepeatedCompositeFieldContainer[TrackingEvent]
    link: _wrappers_pb2.StringValue
    name: _wrappers_pb2.StringValue
    phone: _wrappers_pb2.StringValue
    driver_name: _wrappers_pb2.StringValue
    driver_phone: _wrappers_pb2.StringValue
    driver_photo_url: _wrappers_pb2.StringValue
    driver_plate_number: _wrappers_pb2.StringValue
    type: _wrappers_pb2.StringValue
    shipment_fee: _wrappers_pb2.DoubleValue
    insurance: Insurance
    def __init__(self, tracking_id: _Optional[_Union[_wrappers_pb2.StringValue, _Mapping]] = ..., waybill_id: _Optional[_Union[_wrappers_pb2.StringValue, _Mapping]] = ..., company: _Optional[_Union[_wrappers_pb2.StringValue, _Mapping]] = ..., history: _Optional[_Iterable[_Union[TrackingEvent, _Mapping]]] = ..., link: _Optional[_Union[_wrappers_pb2.StringValue, _Mapping]] = ..., name: _Optional[_Union[_wrappers_pb2.StringValue, _Mapping]] = ..., phone: _Optional[_Union[_wrappers_pb2.StringValue, _Mapping]] = ..., driver_name: _Optional[_Union[_wrappers_pb2.StringValue, _Mapping]] = ..., driver_phone: _Optional[_Union[_wrappers_pb2.StringValue, _Mapping]] = ..., driver_photo_url: _Optional[_Union[_wrappers_pb2.StringValue, _Mapping]] = ..., driver_plate_number: _Optional[_Union[_wrappers_pb2.StringValue, _Mapping]] = ..., type: _Optional[_Union[_wrappers_pb2.StringValue, _Mapping]] = ..., shipment_fee: _Optional[_Union[_wrappers_pb2.DoubleValue, _Mapping]] = ..., insurance: _Optional[_Union[Insurance, _Mapping]] = ...) -> None: ...

class Item(_message.Message):
    __slots__ = ("name", "description", "sku", "value", "quantity", "length", "width", "height", "weight")
    NAME_FIELD_NUMBER: _ClassVar[int]
    DESCRIPTION_FIELD_NUMBER: _ClassVar[int]
    SKU_FIELD_NUMBER: _ClassVar[int]
    VALUE_FIELD_NUMBER: _ClassVar[int]
    QUANTITY_FIELD_NUMBER: _ClassVar[int]
    LENGTH_FIELD_NUMBER: _ClassVar[int]
    WIDTH_FIELD_NUMBER: _ClassVar[int]
    HEIGHT_FIELD_NUMBER: _ClassVar[int]
    WEIGHT_FIELD_NUMBER: _ClassVar[int]
    name: _wrappers_pb2.StringValue
    description: _wrappers_pb2.StringValue
    sku: _wrappers_pb2.StringValue
    value: _wrappers_pb2.DoubleValue
    quantity: _wrappers_pb2.Int64Value
    length: _wrappers_pb2.DoubleValue
    width: _wrappers_pb2.DoubleValue
    height: _wrappers_pb2.DoubleValue
    weight: _wrappers_pb2.DoubleValue
    def __init__(self, name: _Optional[_Union[_wrappers_pb2.StringValue, _Mapping]] = ..., description: _Optional[_Union[_wrappers_pb2.StringValue, _Mapping]] = ..., sku: _Optional[_Union[_wrappers_pb2.StringValue, _Mapping]] = ..., value: _Optional[_Union[_wrappers_pb2.DoubleValue, _Mapping]] = ..., quantity: _Optional[_Union[_wrappers_pb2.Int64Value, _Mapping]] = ..., length: _Optional[_Union[_wrappers_pb2.DoubleValue, _Mapping]] = ..., width: _Optional[_Union[_wrappers_pb2.DoubleValue, _Mapping]] = ..., height: _Optional[_Union[_wrappers_pb2.DoubleValue, _Mapping]] = ..., weight: _Optional[_Union[_wrappers_pb2.DoubleValue, _Mapping]] = ...) -> None: ...

class Order(_message.Message):
    __slots__ = ("provider", "id", "draft_order_id", "short_id", "shipper", "origin", "destination", "delivery", "voucher", "courier", "reference_id", "invoice_id", "items", "extra_json", "metadata_json", "tags", "note", "currency", "tax_lines_json", "price", "status", "raw_status", "ticket_status")
    PROVIDER_FIELD_NUMBER: _ClassVar[int]
    ID_FIELD_NUMBER: _ClassVar[int]
    DRAFT_ORDER_ID_FIELD_NUMBER: _ClassVar[int]
    SHORT_ID_FIELD_NUMBER: _ClassVar[int]
    SHIPPER_FIELD_NUMBER: _ClassVar[int]
    ORIGIN_FIELD_NUMBER: _ClassVar[int]
    DESTINATION_FIELD_NUMBER: _ClassVar[int]
    DELIVERY_FIELD_NUMBER: _ClassVar[int]
    VOUCHER_FIELD_NUMBER: _ClassVar[int]
    COURIER_FIELD_NUMBER: _ClassVar[int]
    REFERENCE_ID_FIELD_NUMBER: _ClassVar[int]
    INVOICE_ID_FIELD_NUMBER: _ClassVar[int]
    ITEMS_FIELD_NUMBER: _ClassVar[int]
    EXTRA_JSON_FIELD_NUMBER: _ClassVar[int]
    METADATA_JSON_FIELD_NUMBER: _ClassVar[int]
    TAGS_FIELD_NUMBER: _ClassVar[int]
    NOTE_FIELD_NUMBER: _ClassVar[int]
    CURRENCY_FIELD_NUMBER: _ClassVar[int]
    TAX_LINES_JSON_FIELD_NUMBER: _ClassVar[int]
    PRICE_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    RAW_STATUS_FIELD_NUMBER: _ClassVar[int]
    TICKET_STATUS_FIELD_NUMBER: _ClassVar[int]
    provider: Provider
    id: str
    draft_order_id: _wrappers_pb2.StringValue
    short_id: _wrappers_pb2.StringValue
    shipper: Shipper
    origin: Origin
    destination: Destination
    delivery: Delivery
    voucher: Voucher
    courier: Courier
    reference_id: _wrappers_pb2.StringValue
    invoice_id: _wrappers_pb2.StringValue
    items: _containers.RepeatedCompositeFieldContainer[Item]
    extra_json: _wrappers_pb2.StringValue
    metadata_json: _wrappers_pb2.StringValue
    tags: _containers.RepeatedScalarFieldContainer[str]
    note: _wrappers_pb2.StringValue
    currency: _wrappers_pb2.StringValue
    tax_lines_json: _containers.RepeatedScalarFieldContainer[str]
    price: _wrappers_pb2.DoubleValue
    status: TrackingStatus
    raw_status: _wrappers_pb2.StringValue
    ticket_status: _wrappers_pb2.StringValue
    def __init__(self, provider: _Optional[_Union[Provider, str]] = ..., id: _Optional[str] = ..., draft_order_id: _Optional[_Union[_wrappers_pb2.StringValue, _Mapping]] = ..., short_id: _Optional[_Union[_wrappers_pb2.StringValue, _Mapping]] = ..., shipper: _Optional[_Union[Shipper, _Mapping]] = ..., origin: _Optional[_Union[Origin, _Mapping]] = ..., destination: _Optional[_Union[Destination, _Mapping]] = ..., delivery: _Optional[_Union[Delivery, _Mapping]] = ..., voucher: _Optional[_Union[Voucher, _Mapping]] = ..., courier: _Optional[_Union[Courier, _Mapping]] = ..., reference_id: _Optional[_Union[_wrappers_pb2.StringValue, _Mapping]] = ..., invoice_id: _Optional[_Union[_wrappers_pb2.StringValue, _Mapping]] = ..., items: _Optional[_Iterable[_Union[Item, _Mapping]]] = ..., extra_json: _Optional[_Union[_wrappers_pb2.StringValue, _Mapping]] = ..., metadata_json: _Optional[_Union[_wrappers_pb2.StringValue, _Mapping]] = ..., tags: _Optional[_Iterable[str]] = ..., note: _Optional[_Union[_wrappers_pb2.StringValue, _Mapping]] = ..., currency: _Optional[_Union[_wrappers_pb2.StringValue, _Mapping]] = ..., tax_lines_json: _Optional[_Iterable[str]] = ..., price: _Optional[_Union[_wrappers_pb2.DoubleValue, _Mapping]] = ..., status: _Optional[_Union[TrackingStatus, str]] = ..., raw_status: _Optional[_Union[_wrappers_pb2.StringValue, _Mapping]] = ..., ticket_status: _Optional[_Union[_wrappers_pb2.StringValue, _Mapping]] = ...) -> None: ...

class GetOrderRequest(_message.Message):
    __slots__ = ("provider", "order_id", "bypass_cache")
    PROVIDER_FIELD_NUMBER: _ClassVar[int]
    ORDER_ID_FIELD_NUMBER: _ClassVar[int]
    BYPASS_CACHE_FIELD_NUMBER: _ClassVar[int]
    provider: Provider
    order_id: str
    bypass_cache: bool
    def __init__(self, provider: _Optional[_Union[Provider, str]] = ..., order_id: _Optional[str] = ..., bypass_cache: _Optional[bool] = ...) -> None: ...

class GetOrderResponse(_message.Message):
    __slots__ = ("order", "cache")
    ORDER_FIELD_NUMBER: _ClassVar[int]
    CACHE_FIELD_NUMBER: _ClassVar[int]
    order: Order
    cache: CacheInfo
    def __init__(self, order: _Optional[_Union[Order, _Mapping]] = ..., cache: _Optional[_Union[CacheInfo, _Mapping]] = ...) -> None: ...

class Sender(_message.Message):
    __slots__ = ("warehouse_name", "name", "phone", "address_id", "detail", "latitude", "longitude")
    WAREHOUSE_NAME_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    PHONE_FIELD_NUMBER: _ClassVar[int]
    ADDRESS_ID_FIELD_NUMBER: _ClassVar[int]
    DETAIL_FIELD_NUMBER: _ClassVar[int]
    LATITUDE_FIELD_NUMBER: _ClassVar[int]
    LONGITUDE_FIELD_NUMBER: _ClassVar[int]
    warehouse_name: str
    name: str
    phone: str
    address_id: int
    detail: str
    latitude: _wrappers_pb2.DoubleValue
    longitude: _wrappers_pb2.DoubleValue
    def __init__(self, warehouse_name: _Optional[str] = ..., name: _Optional[str] = ..., phone: _Optional[str] = ..., address_id: _Optional[int] = ..., detail: _Optional[str] = ..., latitude: _Optional[_Union[_wrappers_pb2.DoubleValue, _Mapping]] = ..., longitude: _Optional[_Union[_wrappers_pb2.DoubleValue, _Mapping]] = ...) -> None: ...

class FormField(_message.Message):
    __slots__ = ("field_name", "value")
    FIELD_NAME_FIELD_NUMBER: _ClassVar[int]
    VALUE_FIELD_NUMBER: _ClassVar[int]
    field_name: str
    value: str
    def __init__(self, field_name: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...

class Receiver(_message.Message):
    __slots__ = ("name", "phone", "address_id", "address", "extra_fields")
    NAME_FIELD_NUMBER: _ClassVar[int]
    PHONE_FIELD_NUMBER: _ClassVar[int]
    ADDRESS_ID_FIELD_NUMBER: _ClassVar[int]
    ADDRESS_FIELD_NUMBER: _ClassVar[int]
    EXTRA_FIELDS_FIELD_NUMBER: _ClassVar[int]
    name: str
    phone: str
    address_id: int
    address: str
    extra_fields: _containers.RepeatedCompositeFieldContainer[FormField]
    def __init__(self, name: _Optional[str] = ..., phone: _Optional[str] = ..., address_id: _Optional[int] = ..., address: _Optional[str] = ..., extra_fields: _Optional[_Iterable[_Union[FormField, _Mapping]]] = ...) -> None: ...

class Payment(_message.Message):
    __slots__ = ("type", "bank")
    TYPE_FIELD_NUMBER: _ClassVar[int]
    BANK_FIELD_NUMBER: _ClassVar[int]
    type: PaymentType
    bank: _wrappers_pb2.StringValue
    def __init__(self, type: _Optional[_Union[PaymentType, str]] = ..., bank: _Optional[_Union[_wrappers_pb2.StringValue, _Mapping]] = ...) -> None: ...

class OrderLine(_message.Message):
    __slots__ = ("sku", "quantity")
    SKU_FIELD_NUMBER: _ClassVar[int]
    QUANTITY_FIELD_NUMBER: _ClassVar[int]
    sku: str
    quantity: int
    def __init__(self, sku: _Optional[str] = ..., quantity: _Optional[int] = ...) -> None: ...

class CreateOrderRequest(_message.Message):
    __slots__ = ("provider", "form_id", "sender", "receiver", "pickup_via", "service_code", "insurance_type", "courier_code", "note", "payment", "order_type", "delivery_voucher_code", "discount_voucher_code", "wa_validation", "items")
    PROVIDER_FIELD_NUMBER: _ClassVar[int]
    FORM_ID_FIELD_NUMBER: _ClassVar[int]
    SENDER_FIELD_NUMBER: _ClassVar[int]
    RECEIVER_FIELD_NUMBER: _ClassVar[int]
    PICKUP_VIA_FIELD_NUMBER: _ClassVar[int]
    SERVICE_CODE_FIELD_NUMBER: _ClassVar[int]
    INSURANCE_TYPE_FIELD_NUMBER: _ClassVar[int]
    COURIER_CODE_FIELD_NUMBER: _ClassVar[int]
    NOTE_FIELD_NUMBER: _ClassVar[int]
    PAYMENT_FIELD_NUMBER: _ClassVar[int]
    ORDER_TYPE_FIELD_NUMBER: _ClassVar[int]
    DELIVERY_VOUCHER_CODE_FIELD_NUMBER: _ClassVar[int]
    DISCOUNT_VOUCHER_CODE_FIELD_NUMBER: _ClassVar[int]
    WA_VALIDATION_FIELD_NUMBER: _ClassVar[int]
    ITEMS_FIELD_NUMBER: _ClassVar[int]
    provider: Provider
    form_id: str
    sender: Sender
    receiver: Receiver
    pickup_via: PickupMethod
    service_code: str
    insurance_type: int
    courier_code: str
    note: _wrappers_pb2.StringValue
    payment: Payment
    order_type: int
    delivery_voucher_code: _wrappers_pb2.StringValue
    discount_voucher_code: _wrappers_pb2.StringValue
    wa_validation: bool
    items: _containers.RepeatedCompositeFieldContainer[OrderLine]
    def __init__(self, provider: _Optional[_Union[Provider, str]] = ..., form_id: _Optional[str] = ..., sender: _Optional[_Union[Sender, _Mapping]] = ..., receiver: _Optional[_Union[Receiver, _Mapping]] = ..., pickup_via: _Optional[_Union[PickupMethod, str]] = ..., service_code: _Optional[str] = ..., insurance_type: _Optional[int] = ..., courier_code: _Optional[str] = ..., note: _Optional[_Union[_wrappers_pb2.StringValue, _Mapping]] = ..., payment: _Optional[_Union[Payment, _Mapping]] = ..., order_type: _Optional[int] = ..., delivery_voucher_code: _Optional[_Union[_wrappers_pb2.StringValue, _Mapping]] = ..., discount_voucher_code: _Optional[_Union[_wrappers_pb2.StringValue, _Mapping]] = ..., wa_validation: _Optional[bool] = ..., items: _Optional[_Iterable[_Union[OrderLine, _Mapping]]] = ...) -> None: ...

class PaymentAccount(_message.Message):
    __slots__ = ("account_name", "bank_code", "bank_name", "account_number", "file_name", "file_path")
    ACCOUNT_NAME_FIELD_NUMBER: _ClassVar[int]
    BANK_CODE_FIELD_NUMBER: _ClassVar[int]
    BANK_NAME_FIELD_NUMBER: _ClassVar[int]
    ACCOUNT_NUMBER_FIELD_NUMBER: _ClassVar[int]
    FILE_NAME_FIELD_NUMBER: _ClassVar[int]
    FILE_PATH_FIELD_NUMBER: _ClassVar[int]
    account_name: str
    bank_code: str
    bank_name: str
    account_number: str
    file_name: str
    file_path: str
    def __init__(self, account_name: _Optional[str] = ..., bank_code: _Optional[str] = ..., bank_name: _Optional[str] = ..., account_number: _Optional[str] = ..., file_name: _Optional[str] = ..., file_path: _Optional[str] = ...) -> None: ...

class SocialLink(_message.Message):
    __slots__ = ("name", "url")
    NAME_FIELD_NUMBER: _ClassVar[int]
    URL_FIELD_NUMBER: _ClassVar[int]
    name: str
    url: str
    def __init__(self, name: _Optional[str] = ..., url: _Optional[str] = ...) -> None: ...

class CreateOrderResponse(_message.Message):
    __slots__ = ("awb", "cs_phone", "payment_accounts", "product_name", "social_media", "total_payment", "message", "replayed")
    AWB_FIELD_NUMBER: _ClassVar[int]
    CS_PHONE_FIELD_NUMBER: _ClassVar[int]
    PAYMENT_ACCOUNTS_FIELD_NUMBER: _ClassVar[int]
    PRODUCT_NAME_FIELD_NUMBER: _ClassVar[int]
    SOCIAL_MEDIA_FIELD_NUMBER: _ClassVar[int]
    TOTAL_PAYMENT_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    REPLAYED_FIELD_NUMBER: _ClassVar[int]
    awb: _wrappers_pb2.StringValue
    cs_phone: str
    payment_accounts: _containers.RepeatedCompositeFieldContainer[PaymentAccount]
    product_name: str
    social_media: _containers.RepeatedCompositeFieldContainer[SocialLink]
    total_payment: _wrappers_pb2.DoubleValue
    message: str
    replayed: bool
    def __init__(self, awb: _Optional[_Union[_wrappers_pb2.StringValue, _Mapping]] = ..., cs_phone: _Optional[str] = ..., payment_accounts: _Optional[_Iterable[_Union[PaymentAccount, _Mapping]]] = ..., product_name: _Optional[str] = ..., social_media: _Optional[_Iterable[_Union[SocialLink, _Mapping]]] = ..., total_payment: _Optional[_Union[_wrappers_pb2.DoubleValue, _Mapping]] = ..., message: _Optional[str] = ..., replayed: _Optional[bool] = ...) -> None: ...

class HealthRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class HealthResponse(_message.Message):
    __slots__ = ("status", "version", "uptime_ms", "in_flight", "providers", "idempotency_store", "idempotency_scope", "fleet_id")
    class ServingStatus(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
        __slots__ = ()
        SERVING_STATUS_UNKNOWN: _ClassVar[HealthResponse.ServingStatus]
        SERVING_STATUS_SERVING: _ClassVar[HealthResponse.ServingStatus]
        SERVING_STATUS_NOT_SERVING: _ClassVar[HealthResponse.ServingStatus]
    SERVING_STATUS_UNKNOWN: HealthResponse.ServingStatus
    SERVING_STATUS_SERVING: HealthResponse.ServingStatus
    SERVING_STATUS_NOT_SERVING: HealthResponse.ServingStatus
    STATUS_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    UPTIME_MS_FIELD_NUMBER: _ClassVar[int]
    IN_FLIGHT_FIELD_NUMBER: _ClassVar[int]
    PROVIDERS_FIELD_NUMBER: _ClassVar[int]
    IDEMPOTENCY_STORE_FIELD_NUMBER: _ClassVar[int]
    IDEMPOTENCY_SCOPE_FIELD_NUMBER: _ClassVar[int]
    FLEET_ID_FIELD_NUMBER: _ClassVar[int]
    status: HealthResponse.ServingStatus
    version: str
    uptime_ms: int
    in_flight: int
    providers: _containers.RepeatedScalarFieldContainer[Provider]
    idempotency_store: str
    idempotency_scope: str
    fleet_id: str
    def __init__(self, status: _Optional[_Union[HealthResponse.ServingStatus, str]] = ..., version: _Optional[str] = ..., uptime_ms: _Optional[int] = ..., in_flight: _Optional[int] = ..., providers: _Optional[_Iterable[_Union[Provider, str]]] = ..., idempotency_store: _Optional[str] = ..., idempotency_scope: _Optional[str] = ..., fleet_id: _Optional[str] = ...) -> None: ...
