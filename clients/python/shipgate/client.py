"""The synchronous client: the asyncio client run on a private event loop thread."""

from __future__ import annotations

import asyncio
import os
import threading
import weakref
from typing import Any, Iterable, Optional, Type, Union

from google.protobuf.message import Message

from . import _core
from ._core import MetadataArg, Options, RequestArg
from ._gen.shipgate.v1 import shipgate_pb2 as pb
from ._methods import CREATE_ORDER, GET_ORDER, HEALTH, TRACK
from .aio import AsyncClient, _cancelled

__all__ = ["Client"]

_CLOSE_WAIT_S = 5.0


def _run_loop(loop: asyncio.AbstractEventLoop) -> None:
    asyncio.set_event_loop(loop)
    try:
        loop.run_forever()
    finally:
        try:
            pending = asyncio.all_tasks(loop)
            for t in pending:
                t.cancel()
            if pending:
                loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
            loop.run_until_complete(loop.shutdown_asyncgens())
        finally:
            loop.close()


def _shutdown(aclient: AsyncClient, loop: asyncio.AbstractEventLoop, thread: threading.Thread) -> None:
    aclient.close()
    if threading.current_thread() is not thread and thread.is_alive():
        try:
            fut = asyncio.run_coroutine_threadsafe(aclient.aclose(_CLOSE_WAIT_S), loop)
            fut.result(_CLOSE_WAIT_S + 1)
        except Exception:
            pass
    try:
        loop.call_soon_threadsafe(loop.stop)
    except RuntimeError:  # already closed
        return
    if threading.current_thread() is not thread:
        thread.join(_CLOSE_WAIT_S)


class Client:
    """The shipgate client, synchronous.

    ``Client(addresses=["tcp://127.0.0.1:7400"], default_deadline_ms=10000,
    max_reply_size=4 MiB, connect_timeout_ms=1000, max_attempts=3, backoff_base_ms=50,
    backoff_cap_ms=1000, attempt_timeout_ms=0, ca_file=None, cert_file=None, key_file=None,
    server_name=None)`` - the options of :class:`shipgate.AsyncClient` (the last four: TLS,
    for tls+tcp:// addresses).

    The methods block until the call ends and return the response message, or raise
    :class:`shipgate.ShipgateError` (a subclass per code). A client may be used from any
    number of threads at once; calls in flight run concurrently (one nng context each) on the
    client's own event loop thread. ``close()`` (or ``with``) cancels calls in flight and stops
    that thread.
    """

    def __init__(
        self,
        addresses: Union[None, str, Iterable[str]] = None,
        *,
        default_deadline_ms: int = _core.DEFAULT_DEADLINE_MS,
        max_reply_size: int = _core.DEFAULT_MAX_REPLY_SIZE,
        connect_timeout_ms: int = _core.DEFAULT_CONNECT_TIMEOUT_MS,
        max_attempts: int = _core.DEFAULT_MAX_ATTEMPTS,
        backoff_base_ms: int = _core.DEFAULT_BACKOFF_BASE_MS,
        backoff_cap_ms: int = _core.DEFAULT_BACKOFF_CAP_MS,
        attempt_timeout_ms: int = _core.DEFAULT_ATTEMPT_TIMEOUT_MS,
        ca_file: Union[None, str, "os.PathLike[str]"] = None,
        cert_file: Union[None, str, "os.PathLike[str]"] = None,
        key_file: Union[None, str, "os.PathLike[str]"] = None,
        server_name: Optional[str] = None,
    ) -> None:
        self._async = AsyncClient(
            addresses,
            default_deadline_ms=default_deadline_ms,
            max_reply_size=max_reply_size,
            connect_timeout_ms=connect_timeout_ms,
            max_attempts=max_attempts,
            backoff_base_ms=backoff_base_ms,
            backoff_cap_ms=backoff_cap_ms,
            attempt_timeout_ms=attempt_timeout_ms,
            ca_file=ca_file,
            cert_file=cert_file,
            key_file=key_file,
            server_name=server_name,
        )
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(
            target=_run_loop, args=(self._loop,), name="shipgate-client", daemon=True
        )
        self._thread.start()
        self._finalizer = weakref.finalize(self, _shutdown, self._async, self._loop, self._thread)

    @property
    def options(self) -> Options:
        return self._async.options

    @property
    def closed(self) -> bool:
        return self._async.closed

    def connected(self) -> int:
        """How many of the addresses have a live connection now."""
        return self._async.connected()

    def close(self) -> None:
        """Cancels the calls in flight (CANCELLED / CLIENT_CANCELLED), waits for them to end
        (a few seconds at most), closes the sockets and stops the loop thread. Idempotent."""
        self._finalizer()

    def __enter__(self) -> "Client":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def call(
        self,
        method: str,
        request: RequestArg = None,
        response_type: Optional[Type[Message]] = None,
        *,
        deadline_ms: Optional[int] = None,
        metadata: MetadataArg = None,
        idempotency_key: Optional[str] = None,
        request_id: Optional[str] = None,
    ) -> Any:
        """Calls ``method``; arguments as :meth:`shipgate.AsyncClient.call`."""
        if not self._finalizer.alive:
            raise _cancelled()
        coro = self._async.call(
            method,
            request,
            response_type,
            deadline_ms=deadline_ms,
            metadata=metadata,
            idempotency_key=idempotency_key,
            request_id=request_id,
        )
        try:
            fut = asyncio.run_coroutine_threadsafe(coro, self._loop)
        except RuntimeError:  # the loop is gone: closed meanwhile
            coro.close()
            raise _cancelled() from None
        try:
            return fut.result()
        except BaseException:
            fut.cancel()  # e.g. KeyboardInterrupt: stop the call too
            raise

    def track(
        self,
        request: Union[None, pb.TrackRequest, dict] = None,
        *,
        deadline_ms: Optional[int] = None,
        metadata: MetadataArg = None,
        idempotency_key: Optional[str] = None,
        request_id: Optional[str] = None,
    ) -> pb.TrackResponse:
        """Track: a shipment's normalized tracking. Idempotent (retried)."""
        return self.call(
            TRACK, request, pb.TrackResponse, deadline_ms=deadline_ms, metadata=metadata,
            idempotency_key=idempotency_key, request_id=request_id,
        )

    def get_order(
        self,
        request: Union[None, pb.GetOrderRequest, dict] = None,
        *,
        deadline_ms: Optional[int] = None,
        metadata: MetadataArg = None,
        idempotency_key: Optional[str] = None,
        request_id: Optional[str] = None,
    ) -> pb.GetOrderResponse:
        """GetOrder: a provider's full order (Biteship). Idempotent (retried)."""
        return self.call(
            GET_ORDER, request, pb.GetOrderResponse, deadline_ms=deadline_ms, metadata=metadata,
            idempotency_key=idempotency_key, request_id=request_id,
        )

    def create_order(
        self,
        request: Union[None, pb.CreateOrderRequest, dict],
        *,
        idempotency_key: str,
        deadline_ms: Optional[int] = None,
        metadata: MetadataArg = None,
        request_id: Optional[str] = None,
    ) -> pb.CreateOrderResponse:
        """CreateOrder (bosOnline checkout); ``idempotency_key`` is required (see
        :meth:`shipgate.AsyncClient.create_order`)."""
        if not isinstance(idempotency_key, str) or not idempotency_key:
            raise _core.invalid("create_order needs an idempotency_key")
        return self.call(
            CREATE_ORDER, request, pb.CreateOrderResponse, deadline_ms=deadline_ms,
            metadata=metadata, idempotency_key=idempotency_key, request_id=request_id,
        )

    def health(
        self,
        request: Union[None, pb.HealthRequest, dict] = None,
        *,
        deadline_ms: Optional[int] = None,
        metadata: MetadataArg = None,
        idempotency_key: Optional[str] = None,
        request_id: Optional[str] = None,
    ) -> pb.HealthResponse:
        """Health: the gateway's serving status, version and providers."""
        return self.call(
            HEALTH, request, pb.HealthResponse, deadline_ms=deadline_ms, metadata=metadata,
            idempotency_key=idempotency_key, request_id=request_id,
        )
