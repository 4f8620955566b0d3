"""The asyncio client. The synchronous :class:`shipgate.Client` runs this one on a private event
loop thread, so both behave the same.

Transport: one nng req0 socket per address, each with one dialer that reconnects in the
background (100 ms .. 1 s). Attempts go round-robin over the addresses, preferring ones that
are connected now. One socket per address (rather than one socket dialing all) keeps the
spread deterministic and tells the client which connection a request went out on. Every
socket has nng's REQ resend switched off (``resend_time`` = -1, i.e.
``NNG_OPT_REQ_RESENDTIME`` = ``NNG_DURATION_INFINITE``) and ``recv_max_size`` set before it
dials. Every attempt opens its own nng context, so any number of calls may be in flight on one
client at once; the context is closed when the attempt ends (a late reply is then dropped).
"""

from __future__ import annotations

import asyncio
import threading
from typing import Any, Iterable, List, Optional, Set, Tuple, Type, Union

import pynng
from google.protobuf.message import Message

from . import _core
from ._core import MetadataArg, Options, PreparedCall, RequestArg, local_error, now_ms
from ._gen import policy
from ._gen.shipgate.v1 import shipgate_pb2 as pb
from ._methods import CREATE_ORDER, GET_ORDER, HEALTH, TRACK
from .errors import Code, ShipgateError

__all__ = ["AsyncClient"]

_NO_RESEND = -1  # NNG_DURATION_INFINITE: nng never resends a request by itself


def _cancelled() -> ShipgateError:
    return local_error(Code.CANCELLED, policy.REASON_CLIENT_CANCELLED, "call cancelled: the client is closed")


def _wake(fut: "asyncio.Future[None]") -> None:
    if not fut.done():
        fut.set_result(None)


class _Waiters:
    """Futures of any event loop, woken from any thread (nng's pipe callbacks, close())."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._set: Set[Tuple[asyncio.AbstractEventLoop, "asyncio.Future[None]"]] = set()

    def add(self, loop: asyncio.AbstractEventLoop, fut: "asyncio.Future[None]") -> None:
        with self._lock:
            self._set.add((loop, fut))

    def discard(self, loop: asyncio.AbstractEventLoop, fut: "asyncio.Future[None]") -> None:
        with self._lock:
            self._set.discard((loop, fut))

    def wake_all(self) -> None:
        with self._lock:
            items = list(self._set)
            self._set.clear()
        for loop, fut in items:
            try:
                loop.call_soon_threadsafe(_wake, fut)
            except RuntimeError:  # that loop is closed
                pass


class _Endpoint:
    """One gateway address: a req0 socket with one dialer."""

    def __init__(self, url: str, opts: Options) -> None:
        self.url = url
        self.up = False  # a pipe is connected now
        self._pipe: Optional[int] = None
        self.waiters = _Waiters()  # woken when a pipe comes up
        # all options before dialing: contexts copy the resend time, the dialer the size cap
        self.sock = pynng.Req0(
            resend_time=_NO_RESEND,
            recv_max_size=opts.max_reply_size,
            reconnect_time_min=_core.RECONNECT_MIN_MS,
            reconnect_time_max=_core.RECONNECT_MAX_MS,
        )
        try:
            if self.sock.resend_time != _NO_RESEND:  # pragma: no cover - nng refused it
                raise RuntimeError("cannot switch nng's REQ resend off")
            self.sock.add_post_pipe_connect_cb(self._on_up)
            self.sock.add_post_pipe_remove_cb(self._on_down)
            self.sock.dial(url, block=False)
        except pynng.NNGException as e:
            self.sock.close()
            raise ValueError(f"cannot dial {url!r}: {e}") from None
        except BaseException:
            self.sock.close()
            raise

    # nng threads
    def _on_up(self, pipe: Any) -> None:
        self._pipe = pipe.id
        self.up = True
        self.waiters.wake_all()

    def _on_down(self, pipe: Any) -> None:
        if pipe.id == self._pipe:
            self.up = False
            self._pipe = None

    def close(self) -> None:
        self.sock.close()
        self.waiters.wake_all()


class AsyncClient:
    """The shipgate client for asyncio.

    ``AsyncClient(addresses=["tcp://127.0.0.1:7400"], default_deadline_ms=10000,
    max_reply_size=4 MiB, connect_timeout_ms=1000, max_attempts=3, backoff_base_ms=50,
    backoff_cap_ms=1000, attempt_timeout_ms=0)``

    - ``addresses``: one nng URL or a list (tcp://, ipc://, inproc://); calls go round-robin.
    - ``default_deadline_ms``: budget of a call that gives none; it covers every attempt and
      backoff.
    - ``max_reply_size``: largest reply accepted (bytes), also nng's ``recv_max_size``.
    - ``connect_timeout_ms``: longest an attempt waits for a connection to send on.
    - ``max_attempts``: attempts in all, the first included (1: never retry).
    - ``backoff_base_ms``/``backoff_cap_ms``: the wait before retry n is
      base * 2^(n-1) capped, jittered into [d/2, d], and at least the gateway's retry_after_ms.
    - ``attempt_timeout_ms``: longest wait for one reply; 0: the whole remaining budget.

    The methods are coroutines; a failed call raises :class:`shipgate.ShipgateError` (a
    subclass per code). Calls may run concurrently from any number of tasks. ``close()`` (or
    ``async with``) closes the sockets; calls in flight then fail with CANCELLED /
    CLIENT_CANCELLED. The client may be used from several event loops, one call per loop at a
    time or many.
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
    ) -> None:
        self._opts = Options.make(
            addresses,
            default_deadline_ms=default_deadline_ms,
            max_reply_size=max_reply_size,
            connect_timeout_ms=connect_timeout_ms,
            max_attempts=max_attempts,
            backoff_base_ms=backoff_base_ms,
            backoff_cap_ms=backoff_cap_ms,
            attempt_timeout_ms=attempt_timeout_ms,
        )
        self._lock = threading.Lock()
        self._closed = False
        self._closers = _Waiters()  # sleeps and connection waits, woken by close()
        self._idle = _Waiters()  # woken when no call is in flight
        self._in_flight = 0
        self._rr = 0
        self._eps: List[_Endpoint] = []
        try:
            for url in self._opts.addresses:
                self._eps.append(_Endpoint(url, self._opts))
        except BaseException:
            for ep in self._eps:
                ep.close()
            raise

    # ------------------------------------------------------------------ state

    @property
    def options(self) -> Options:
        """The configuration, defaults filled in."""
        return self._opts

    @property
    def closed(self) -> bool:
        return self._closed

    def connected(self) -> int:
        """How many of the addresses have a live connection now."""
        return sum(1 for ep in self._eps if ep.up)

    @property
    def in_flight(self) -> int:
        return self._in_flight

    def close(self) -> None:
        """Closes the sockets. Calls in flight fail with CANCELLED / CLIENT_CANCELLED, and
        later calls too. Idempotent; any thread."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
        for ep in self._eps:
            ep.close()
        self._closers.wake_all()

    async def aclose(self, timeout: float = 5.0) -> None:
        """close(), then waits (at most ``timeout`` seconds) for the calls in flight to end."""
        self.close()
        loop = asyncio.get_running_loop()
        end = loop.time() + timeout
        while self._in_flight > 0 and loop.time() < end:
            fut = loop.create_future()
            self._idle.add(loop, fut)
            try:
                if self._in_flight == 0:
                    break
                await asyncio.wait_for(fut, max(0.0, end - loop.time()))
            except asyncio.TimeoutError:
                break
            finally:
                self._idle.discard(loop, fut)

    async def __aenter__(self) -> "AsyncClient":
        return self

    async def __aexit__(self, *exc: Any) -> None:
        await self.aclose()

    # ------------------------------------------------------------------ calls

    async def call(
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
        """Calls ``method`` and returns its response.

        method: "Track", "shipgate.v1.Shipgate.Track" or "/shipgate.v1.Shipgate/Track" for the
        contract's methods, or any other "/package.Service/Method", sent as is (and retried only
        with an idempotency key). request: the request message, a dict of its fields (proto3
        JSON or field names), raw payload bytes, or None for an empty one. response_type: the
        response message class; None means the method's own type for the contract's methods and
        raw payload bytes for others.

        deadline_ms: budget of the whole call, retries included (None or 0: the client's
        default; < 0: already expired, fails without sending). metadata: lower-case keys to
        str values. idempotency_key: sent unchanged in every attempt; with it a call that is
        not idempotent is retried after the gateway's UNAVAILABLE. request_id: echoed by the
        gateway; default 16 random hex digits.

        Retries follow proto/shipgate/v1/client_policy.json: a DEADLINE_EXCEEDED from the
        gateway is never retried, and a call that is not idempotent (CreateOrder) whose request
        went out and whose connection then broke or timed out raises Unknown /
        OUTCOME_UNKNOWN, on any number of addresses.
        """
        call = _core.prepare(
            self._opts,
            method,
            request,
            response_type,
            deadline_ms=deadline_ms,
            metadata=metadata,
            idempotency_key=idempotency_key,
            request_id=request_id,
        )
        with self._lock:
            self._in_flight += 1
        try:
            return await self._run(call)
        finally:
            with self._lock:
                self._in_flight -= 1
                idle = self._in_flight == 0
            if idle:
                self._idle.wake_all()

    async def track(
        self,
        request: Union[None, pb.TrackRequest, dict] = None,
        *,
        deadline_ms: Optional[int] = None,
        metadata: MetadataArg = None,
        idempotency_key: Optional[str] = None,
        request_id: Optional[str] = None,
    ) -> pb.TrackResponse:
        """Track: a shipment's normalized tracking. Idempotent (retried)."""
        return await self.call(
            TRACK, request, pb.TrackResponse, deadline_ms=deadline_ms, metadata=metadata,
            idempotency_key=idempotency_key, request_id=request_id,
        )

    async def get_order(
        self,
        request: Union[None, pb.GetOrderRequest, dict] = None,
        *,
        deadline_ms: Optional[int] = None,
        metadata: MetadataArg = None,
        idempotency_key: Optional[str] = None,
        request_id: Optional[str] = None,
    ) -> pb.GetOrderResponse:
        """GetOrder: a provider's full order (Biteship). Idempotent (retried)."""
        return await self.call(
            GET_ORDER, request, pb.GetOrderResponse, deadline_ms=deadline_ms, metadata=metadata,
            idempotency_key=idempotency_key, request_id=request_id,
        )

    async def create_order(
        self,
        request: Union[None, pb.CreateOrderRequest, dict],
        *,
        idempotency_key: str,
        deadline_ms: Optional[int] = None,
        metadata: MetadataArg = None,
        request_id: Optional[str] = None,
    ) -> pb.CreateOrderResponse:
        """CreateOrder (bosOnline checkout). ``idempotency_key`` is required: the same key
        again is answered from the first call (``replayed``) and never creates a second
        order on that gateway; it is sent unchanged in every attempt. The call is retried only
        when nothing was sent or the gateway answered UNAVAILABLE; once the request went out, a
        broken connection or a timeout raises :class:`shipgate.Unknown` with reason
        OUTCOME_UNKNOWN (check with the provider before trying again)."""
        if not isinstance(idempotency_key, str) or not idempotency_key:
            e = _core.invalid("create_order needs an idempotency_key")
            raise e
        return await self.call(
            CREATE_ORDER, request, pb.CreateOrderResponse, deadline_ms=deadline_ms,
            metadata=metadata, idempotency_key=idempotency_key, request_id=request_id,
        )

    async def health(
        self,
        request: Union[None, pb.HealthRequest, dict] = None,
        *,
        deadline_ms: Optional[int] = None,
        metadata: MetadataArg = None,
        idempotency_key: Optional[str] = None,
        request_id: Optional[str] = None,
    ) -> pb.HealthResponse:
        """Health: the gateway's serving status, version and providers."""
        return await self.call(
            HEALTH, request, pb.HealthResponse, deadline_ms=deadline_ms, metadata=metadata,
            idempotency_key=idempotency_key, request_id=request_id,
        )

    # ------------------------------------------------------------------ attempts

    def _pick(self) -> _Endpoint:
        """Round robin over the endpoints, preferring connected ones."""
        with self._lock:
            n = len(self._eps)
            for k in range(n):
                i = (self._rr + k) % n
                if self._eps[i].up:
                    self._rr = i + 1
                    return self._eps[i]
            i = self._rr % n
            self._rr = i + 1
            return self._eps[i]

    async def _wait(self, seconds: float, ep: Optional[_Endpoint] = None) -> None:
        """Sleeps up to ``seconds``; close() (and, with ep, its connection) ends it early."""
        loop = asyncio.get_running_loop()
        fut: "asyncio.Future[None]" = loop.create_future()
        self._closers.add(loop, fut)
        if ep is not None:
            ep.waiters.add(loop, fut)
        try:
            if self._closed or (ep is not None and ep.up):
                return
            try:
                await asyncio.wait_for(fut, max(0.0, seconds))
            except asyncio.TimeoutError:
                pass
        finally:
            self._closers.discard(loop, fut)
            if ep is not None:
                ep.waiters.discard(loop, fut)

    async def _run(self, call: PreparedCall) -> Any:
        opts = self._opts
        attempts = 0
        while True:
            remaining = _core.remaining_ms(call)
            if self._closed:
                err = _cancelled()
                break
            if remaining <= 0:
                if attempts == 0:
                    err = local_error(
                        Code.DEADLINE_EXCEEDED, policy.REASON_CLIENT_DEADLINE_EXPIRED,
                        "deadline expired before the request was sent",
                    )
                else:
                    err = local_error(
                        Code.DEADLINE_EXCEEDED, policy.REASON_TRANSPORT_TIMEOUT,
                        f"deadline expired after {attempts} attempts",
                    )
                break
            ep = self._pick()
            budget = remaining
            if 0 < opts.attempt_timeout_ms < budget:
                budget = opts.attempt_timeout_ms
            # the budget left when the attempt goes out, less the reply margin
            call.envelope.deadline_ms = _core.sent_deadline_ms(budget)
            data = call.envelope.SerializeToString()
            attempts += 1
            rep, err, never_sent = await self._attempt(call, ep, data, budget)
            if err is None:
                if rep.status.code == Code.OK:
                    try:
                        return _core.decode_payload(call, rep)
                    except ShipgateError as e:
                        e.attempts, e.request_id = attempts, call.request_id
                        raise
                err = ShipgateError.from_status(rep.status)
            err.attempts, err.request_id = attempts, call.request_id
            if self._closed and err.code != Code.CANCELLED:
                err = _cancelled()
                break
            decision = _core.decide(call, err, never_sent)
            if decision == policy.OUTCOME_UNKNOWN:
                err = _core.outcome_unknown(call, err)
                err.attempts, err.request_id = attempts, call.request_id
                raise err
            if decision != policy.RETRY or attempts >= opts.max_attempts:
                raise err
            delay = opts.backoff_ms(attempts)
            if err.retry_after_ms > delay:
                delay = float(err.retry_after_ms)
            if delay >= call.deadline - now_ms():
                raise err  # no budget for another attempt: report this one
            await self._wait(delay / 1000.0)
        err.attempts, err.request_id = attempts, call.request_id
        raise err

    async def _attempt(
        self, call: PreparedCall, ep: _Endpoint, data: bytes, budget: int
    ) -> Tuple[Any, Optional[ShipgateError], bool]:
        """One attempt: (reply, None, False) when a usable reply came (any status), else
        (None, error, never_sent)."""
        opts = self._opts
        start = now_ms()
        send_end = start + min(budget, opts.connect_timeout_ms)
        try:
            ctx = ep.sock.new_context()
        except pynng.Closed:
            return None, _cancelled(), True
        except pynng.NNGException as e:
            return None, local_error(
                Code.UNAVAILABLE, policy.REASON_TRANSPORT_ERROR, f"{ep.url}: cannot open a context: {e}", True
            ), True
        try:
            # Wait for a connection here rather than inside nng: a send that nng gives up on
            # keeps its message, and pynng does not free it.
            if not ep.up:
                await self._wait((send_end - now_ms()) / 1000.0, ep)
            if self._closed:
                return None, _cancelled(), True
            sent = False
            if ep.up:
                try:
                    await asyncio.wait_for(ctx.asend(data), max(send_end - now_ms(), 1.0) / 1000.0)
                    sent = True
                except asyncio.TimeoutError:
                    pass
                except pynng.Closed:
                    return None, _cancelled(), True
                except pynng.NNGException as e:
                    return None, local_error(
                        Code.UNAVAILABLE, policy.REASON_TRANSPORT_ERROR, f"sending to {ep.url}: {e}", True
                    ), True
            if not sent:
                if _core.remaining_ms(call) <= 0:  # not even a millisecond left
                    err = local_error(
                        Code.DEADLINE_EXCEEDED, policy.REASON_TRANSPORT_NOT_CONNECTED,
                        f"no connection to {ep.url} within the deadline",
                    )
                else:
                    err = local_error(
                        Code.UNAVAILABLE, policy.REASON_TRANSPORT_NOT_CONNECTED,
                        f"no connection to {ep.url} within {opts.connect_timeout_ms} ms", True,
                    )
                return None, err, True
            wait = max(start + budget - now_ms(), 1.0)
            try:
                reply = await asyncio.wait_for(ctx.arecv(), wait / 1000.0)
            except asyncio.TimeoutError:
                return None, local_error(
                    Code.DEADLINE_EXCEEDED, policy.REASON_TRANSPORT_TIMEOUT,
                    f"no reply from {ep.url} within {budget} ms",
                ), False
            except pynng.ConnectionReset:
                return None, local_error(
                    Code.UNAVAILABLE, policy.REASON_TRANSPORT_CONNECTION_LOST,
                    f"connection to {ep.url} lost while waiting for the reply (peer closed it, "
                    "or the reply exceeded max_reply_size)", True,
                ), False
            except pynng.Closed:
                return None, _cancelled(), False
            except pynng.NNGException as e:
                return None, local_error(
                    Code.UNAVAILABLE, policy.REASON_TRANSPORT_ERROR, f"receiving from {ep.url}: {e}", True
                ), False
            rep, err = _core.decode_reply(call, reply, ep.url, opts.max_reply_size)
            return rep, err, False
        finally:
            try:
                ctx.close()
            except Exception:  # the socket is closed already
                pass
