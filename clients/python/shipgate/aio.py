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

Fleets (proto/shipgate/v1/client_policy.json, section fleet): before a keyed call (CreateOrder
with an idempotency key) is sent on a connection, the client asks Health on that connection,
once per connection (nng pipe: a new pipe, after a drop or a gateway restart, is asked again),
and keeps the fleet it reports (fleet_id with idempotency_scope "fleet", else none). A keyed
call whose request went out to a gateway of a fleet and got no answer may be retried, but only
on a connection whose Health reports that same fleet.
"""

from __future__ import annotations

import asyncio
import os
import threading
from typing import Any, Iterable, List, Optional, Set, Tuple, Type, Union

import pynng
from google.protobuf.message import Message

from . import _core
from ._core import MetadataArg, Options, PreparedCall, RequestArg, local_error, now_ms
from ._gen import policy
from ._gen.shipgate.v1 import rpc_pb2
from ._gen.shipgate.v1 import shipgate_pb2 as pb
from ._methods import CREATE_ORDER, GET_ORDER, HEALTH, TRACK
from .errors import Code, ShipgateError

__all__ = ["AsyncClient"]

_NO_RESEND = -1  # NNG_DURATION_INFINITE: nng never resends a request by itself
_MAX_PROBES = 3  # Health probes in one attempt whose connection is replaced meanwhile


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


def _read_pem(name: str, path: str) -> str:
    try:
        with open(path, "rb") as f:
            data = f.read((1 << 20) + 1)
    except OSError as e:
        raise ValueError(f"cannot read {name} {path!r}: {e.strerror or e}") from None
    if not data or len(data) > 1 << 20:
        raise ValueError(f"{name} {path!r} is {'empty' if not data else 'over 1 MiB'}, not a PEM file")
    try:
        return data.decode("ascii")
    except UnicodeDecodeError:
        raise ValueError(f"{name} {path!r} is not a PEM file (not text)") from None


class _TLSFiles:
    """The TLS material of a client, read once when it is made: the CA bundle's path (nng
    loads it, once per tls+tcp:// address) and the client certificate and key, as PEM text."""

    def __init__(self, opts: Options) -> None:
        assert opts.ca_file is not None  # Options.make refuses a TLS address without it
        self.ca_file = opts.ca_file
        _read_pem("ca_file", self.ca_file)  # a clear error for a file that is not there
        self.own: Optional[Tuple[str, str]] = None
        if opts.cert_file is not None and opts.key_file is not None:
            self.own = (_read_pem("cert_file", opts.cert_file), _read_pem("key_file", opts.key_file))
        self.cert_file, self.key_file = opts.cert_file, opts.key_file

    def config(self, url: str, server_name: Optional[str]) -> "pynng.TLSConfig":
        """A client TLSConfig for dialing url: the CA, verification required, the name to
        check (server_name, else the URL's host) and the client certificate if any."""
        name = server_name or _core.url_host(url)
        if not name:  # pragma: no cover - Options.make checks it
            raise ValueError(f"{url!r}: no server name to verify the gateway's certificate against")
        cfg = pynng.TLSConfig(pynng.TLSConfig.MODE_CLIENT)
        try:
            cfg.set_auth_mode(pynng.TLSConfig.AUTH_MODE_REQUIRED)
            # always set, to the URL's host by default: nng does not fill it in for a config
            # given to it, and without one the bundled mbedTLS (3.6) refuses the handshake
            cfg.set_server_name(name)
        except pynng.NNGException as e:
            raise ValueError(f"{url!r}: cannot set up TLS (server name {name!r}): {e}") from None
        try:
            cfg.add_ca_file(self.ca_file)
        except pynng.NNGException as e:
            raise ValueError(
                f"ca_file {self.ca_file!r} does not load as a PEM CA bundle: {e}") from None
        if self.own is not None:
            try:
                cfg.set_own_cert(self.own[0], self.own[1])
            except pynng.NNGException as e:
                raise ValueError(
                    f"cert_file {self.cert_file!r} and key_file {self.key_file!r} do not load "
                    f"as a PEM certificate and its unencrypted private key: {e}") from None
        return cfg


class _Endpoint:
    """One gateway address: a req0 socket with one dialer (over TLS for tls+tcp://)."""

    def __init__(self, url: str, opts: Options, tls: Optional[_TLSFiles] = None) -> None:
        self.url = url
        self.up = False  # a pipe is connected now
        self._pipe: Optional[int] = None
        self._last_pipe: Optional[int] = None  # the newest connection that came up (kept when down)
        # what Health said on a connection: (its pipe id, the fleet or None); it holds only
        # while that pipe is the one connected (a new connection may reach another store)
        self._fleet: Optional[Tuple[int, Optional[str]]] = None
        self.waiters = _Waiters()  # woken when a pipe comes up
        # kept for the socket's life (nng holds its own reference too)
        self.tls: Optional["pynng.TLSConfig"] = None
        if _core.is_tls_url(url):
            if tls is None:  # pragma: no cover - Options.make refuses a TLS URL without ca_file
                raise ValueError(f"{url!r} is a TLS address: give ca_file")
            self.tls = tls.config(url, opts.server_name)
        # all options before dialing: contexts copy the resend time, the dialer the size cap
        # and the TLS config (a socket's, given to the dialers it makes)
        self.sock = pynng.Req0(
            resend_time=_NO_RESEND,
            recv_max_size=opts.max_reply_size,
            reconnect_time_min=_core.RECONNECT_MIN_MS,
            reconnect_time_max=_core.RECONNECT_MAX_MS,
            tls_config=self.tls,
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
        self._last_pipe = pipe.id
        self._pipe = pipe.id
        self.up = True
        self.waiters.wake_all()

    def _on_down(self, pipe: Any) -> None:
        if pipe.id == self._pipe:
            self.up = False
            self._pipe = None
            self._fleet = None

    # any thread
    @property
    def pipe(self) -> Optional[int]:
        """The id of the connection up now, or None."""
        return self._pipe

    @property
    def last_pipe(self) -> Optional[int]:
        """The id of the newest connection that came up, up now or not. A request whose send
        completed while it was p went out on p: nng sends only on a connection that is up, and
        a new one gets a new id."""
        return self._last_pipe

    def fleet(self) -> Tuple[bool, Optional[str], Optional[int]]:
        """(known, fleet, pipe) of the connection up now (pipe): the fleet its Health
        reported, None for none; known is False when no Health was asked on it."""
        pipe, f = self._pipe, self._fleet
        if pipe is not None and f is not None and f[0] == pipe:
            return True, f[1], pipe
        return False, None, pipe

    def learn(self, pipe: Optional[int], fleet: Optional[str]) -> bool:
        """Keeps what Health said on connection ``pipe``, if that is still the one up."""
        if pipe is None or self._pipe != pipe:
            return False
        self._fleet = (pipe, fleet)
        return self._pipe == pipe

    def close(self) -> None:
        self.sock.close()
        self.waiters.wake_all()


class AsyncClient:
    """The shipgate client for asyncio.

    ``AsyncClient(addresses=["tcp://127.0.0.1:7400"], default_deadline_ms=10000,
    max_reply_size=4 MiB, connect_timeout_ms=1000, max_attempts=3, backoff_base_ms=50,
    backoff_cap_ms=1000, attempt_timeout_ms=0, ca_file=None, cert_file=None, key_file=None,
    server_name=None)``

    - ``addresses``: one nng URL or a list (tcp://, tls+tcp://, ipc://, inproc://); calls go
      round-robin.
    - ``default_deadline_ms``: budget of a call that gives none; it covers every attempt and
      backoff.
    - ``max_reply_size``: largest reply accepted (bytes), also nng's ``recv_max_size``.
    - ``connect_timeout_ms``: longest an attempt waits for a connection to send on.
    - ``max_attempts``: attempts in all, the first included (1: never retry).
    - ``backoff_base_ms``/``backoff_cap_ms``: the wait before retry n is
      base * 2^(n-1) capped, jittered into [d/2, d], and at least the gateway's retry_after_ms.
    - ``attempt_timeout_ms``: longest wait for one reply; 0: the whole remaining budget.
    - TLS, for tls+tcp:// addresses (the gateway's certificate and name are always verified):
      ``ca_file``: the PEM CA bundle the gateway's certificate must chain to, required with
      such an address; ``cert_file`` and ``key_file`` (together): a PEM client certificate
      and its unencrypted key, for a gateway that asks for one (mTLS); ``server_name``: the
      name the certificate must carry (default: each URL's host). A gateway whose certificate
      does not verify (or that refuses the client's) is never connected: calls fail as with
      no gateway there (TRANSPORT_NOT_CONNECTED). Bad options or unreadable files raise
      ValueError here.

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
        ca_file: Union[None, str, "os.PathLike[str]"] = None,
        cert_file: Union[None, str, "os.PathLike[str]"] = None,
        key_file: Union[None, str, "os.PathLike[str]"] = None,
        server_name: Optional[str] = None,
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
            ca_file=ca_file,
            cert_file=cert_file,
            key_file=key_file,
            server_name=server_name,
        )
        self._lock = threading.Lock()
        self._closed = False
        self._closers = _Waiters()  # sleeps and connection waits, woken by close()
        self._idle = _Waiters()  # woken when no call is in flight
        self._in_flight = 0
        self._rr = 0
        self._eps: List[_Endpoint] = []
        # the files are read (and checked) whenever given, as the C client does
        tls = _TLSFiles(self._opts) if self._opts.ca_file is not None else None
        try:
            for url in self._opts.addresses:
                self._eps.append(_Endpoint(url, self._opts, tls))
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
        OUTCOME_UNKNOWN, on any number of addresses - unless it is keyed and went to a gateway
        of a fleet (Health, asked once per connection before a keyed call: scope "fleet" with
        a fleet_id): then it is retried, only where Health reports the same fleet.
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
        order on that gateway (or its fleet); it is sent unchanged in every attempt. Before it
        is sent on a connection, the client asks that gateway's Health once (per connection)
        for its fleet. The call is retried when nothing was sent or the gateway answered
        UNAVAILABLE; once the request went out, a broken connection or a timeout raises
        :class:`shipgate.Unknown` with reason OUTCOME_UNKNOWN (check with the provider before
        trying again), unless the gateway is of a fleet: then the call moves on to an address
        whose Health reports the same fleet (any other ends it OUTCOME_UNKNOWN unsent), and a
        later failure that does not settle it (local, or the gateway's CANCELLED,
        DEADLINE_EXCEEDED, RESOURCE_EXHAUSTED, ABORTED, UNAVAILABLE) is OUTCOME_UNKNOWN too."""
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

    def _budget(self, call: PreparedCall) -> int:
        """The longest wait for one reply now: the call's remaining budget, at most
        attempt_timeout_ms."""
        budget = _core.remaining_ms(call)
        if 0 < self._opts.attempt_timeout_ms < budget:
            budget = self._opts.attempt_timeout_ms
        return budget

    async def _run(self, call: PreparedCall) -> Any:
        opts = self._opts
        attempts = 0
        keyed = call.kind == policy.KEYED
        # Once an attempt of a keyed call went out and no answer came back: where it went and
        # the fleet of that connection. Every later attempt goes only where Health reports that
        # fleet, and a final failure that does not settle the call becomes OUTCOME_UNKNOWN.
        first_url: Optional[str] = None
        first_fleet: Optional[str] = None
        last_url: Optional[str] = None
        while True:
            if self._closed:
                err = _cancelled()
                break
            if _core.remaining_ms(call) <= 0:
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
            attempts += 1
            last_url = ep.url
            res = await self._attempt(call, ep, first_url, first_fleet)
            err = res.err
            if err is None:
                if res.rep.status.code == Code.OK:
                    try:
                        return _core.decode_payload(call, res.rep)
                    except ShipgateError as e:
                        e.attempts, e.request_id = attempts, call.request_id
                        raise
                err = ShipgateError.from_status(res.rep.status)
            err.attempts, err.request_id = attempts, call.request_id
            if res.final:  # OUTCOME_UNKNOWN already: the next address is of another fleet
                raise err
            if self._closed and err.code != Code.CANCELLED:
                err = _cancelled()
                break
            decision = _core.decide(call, err, res.never_sent, res.fleet is not None)
            if (keyed and first_url is None and not res.never_sent and err.local
                    and decision != policy.STOP):
                first_url, first_fleet = ep.url, res.fleet  # it went out, no answer came back
            if decision == policy.OUTCOME_UNKNOWN:
                err = _core.outcome_unknown(call, err)
                err.attempts, err.request_id = attempts, call.request_id
                raise err
            if decision != policy.RETRY or attempts >= opts.max_attempts:
                break
            delay = opts.backoff_ms(attempts)
            if err.retry_after_ms > delay:
                delay = float(err.retry_after_ms)
            if delay >= call.deadline - now_ms():
                break  # no budget for another attempt: report this one
            await self._wait(delay / 1000.0)
        err = _core.settle(call, err, first_url, first_fleet, last_url)
        err.attempts, err.request_id = attempts, call.request_id
        raise err

    def _not_connected(self, call: PreparedCall, ep: _Endpoint) -> ShipgateError:
        if _core.remaining_ms(call) <= 0:  # not even a millisecond left
            return local_error(
                Code.DEADLINE_EXCEEDED, policy.REASON_TRANSPORT_NOT_CONNECTED,
                f"no connection to {ep.url} within the deadline",
            )
        return local_error(
            Code.UNAVAILABLE, policy.REASON_TRANSPORT_NOT_CONNECTED,
            f"no connection to {ep.url} within {self._opts.connect_timeout_ms} ms", True,
        )

    async def _attempt(
        self, call: PreparedCall, ep: _Endpoint, first_url: Optional[str], first_fleet: Optional[str]
    ) -> "_Attempt":
        """One attempt on ep: for a keyed call, Health first when the fleet behind ep's
        connection is not known, then the request (not sent when the call has moved on from
        first_url and ep is not of first_fleet)."""
        opts = self._opts
        start = now_ms()
        budget = self._budget(call)
        send_end = start + min(budget, opts.connect_timeout_ms)
        keyed = call.kind == policy.KEYED
        fleet: Optional[str] = None
        pipe: Optional[int] = None
        probes = 0
        while True:
            # Wait for a connection here rather than inside nng: a send that nng gives up on
            # keeps its message, and pynng does not free it.
            if not ep.up:
                await self._wait((send_end - now_ms()) / 1000.0, ep)
            if self._closed:
                return _Attempt(err=_cancelled())
            if not ep.up:
                return _Attempt(err=self._not_connected(call, ep))
            if not keyed:
                pipe = ep.pipe
                break
            known, fleet, pipe = ep.fleet()
            if known:
                break
            if probes == _MAX_PROBES:
                return _Attempt(err=local_error(
                    Code.UNAVAILABLE, policy.REASON_TRANSPORT_CONNECTION_LOST,
                    f"the connection to {ep.url} was replaced during each of {probes} Health "
                    f"probes; {call.method} not sent", True,
                ))
            probes += 1
            err = await self._probe(call, ep, send_end)
            if err is not None:
                return _Attempt(err=err)
            # the fleet is known now, unless the connection was replaced meanwhile: see above
        if keyed:
            if first_url is not None and fleet != first_fleet:
                return _Attempt(err=_core.fleet_mismatch(call, first_url, first_fleet, ep.url, fleet),
                                final=True)
            if probes:  # the request's own wait starts after the probe's
                start = now_ms()
                budget = self._budget(call)
                if budget <= 0:
                    return _Attempt(err=local_error(
                        Code.DEADLINE_EXCEEDED, policy.REASON_CLIENT_DEADLINE_EXPIRED,
                        f"deadline expired in the Health probe of {ep.url}; {call.method} not sent",
                    ))
                send_end = start + min(budget, opts.connect_timeout_ms)
        # the budget left when the attempt goes out, less the reply margin
        call.envelope.deadline_ms = _core.sent_deadline_ms(budget)
        data = call.envelope.SerializeToString()
        reply, err, sent_on = await self._exchange(call, ep, data, start, budget, send_end)
        # the attempt's fleet: the one Health reported on the connection it went out on. (The
        # newest connection differs when the probed one dropped just before the send, which
        # then waited for the next one: that one was not asked, so its fleet is not known.)
        went_fleet = fleet if keyed and sent_on is not None and sent_on == pipe else None
        if err is not None:
            return _Attempt(err=err, never_sent=sent_on is None, fleet=went_fleet)
        rep, err = _core.decode_reply(call, reply, ep.url, opts.max_reply_size)
        if rep is not None and call.method == HEALTH and rep.status.code == Code.OK:
            # a Health of the caller's tells the fleet of its connection as well as a probe
            ep.learn(sent_on if sent_on == pipe else None, _core.fleet_of_health(rep.payload))
        return _Attempt(rep=rep, err=err, never_sent=False, fleet=went_fleet)

    async def _probe(self, call: PreparedCall, ep: _Endpoint, send_end: float) -> Optional[ShipgateError]:
        """Health on ep's connection, before a keyed call is sent on it: keeps the fleet it
        reports (none for an error status or a reply that does not decode). Returns None, or
        the attempt's failure when Health failed in transport (the call's request not sent)."""
        start = now_ms()
        budget = self._budget(call)  # the call's remaining budget, bounded by the attempt's
        if budget <= 0:
            return local_error(
                Code.DEADLINE_EXCEEDED, policy.REASON_CLIENT_DEADLINE_EXPIRED,
                f"deadline expired before the Health probe of {ep.url}; {call.method} not sent",
            )
        rid = call.request_id  # as the C client: the call's request id, an empty HealthRequest
        env = rpc_pb2.RpcRequest(method=HEALTH, request_id=rid,
                                 deadline_ms=_core.sent_deadline_ms(budget),
                                 payload=pb.HealthRequest().SerializeToString())
        pipe = ep.pipe
        reply, err, sent_on = await self._exchange(call, ep, env.SerializeToString(), start, budget,
                                                   send_end)
        if err is not None:
            if err.code == Code.CANCELLED:
                return err
            return local_error(
                err.code, err.reason or policy.REASON_TRANSPORT_ERROR,
                f"Health probe before {call.method}: {err.message}; {call.method} not sent",
                err.retryable,
            )
        rep, _ = _core.decode_reply_of(rid, reply, ep.url, self._opts.max_reply_size)
        fleet = None
        if rep is not None and rep.status.code == Code.OK:
            fleet = _core.fleet_of_health(rep.payload)
        ep.learn(pipe if sent_on == pipe else None, fleet)
        return None

    async def _exchange(
        self, call: PreparedCall, ep: _Endpoint, data: bytes, start: float, budget: int,
        send_end: float,
    ) -> Tuple[Optional[bytes], Optional[ShipgateError], Optional[int]]:
        """Sends data on a context of its own and waits for the reply until start + budget:
        (reply, None, pipe) or (None, error, pipe), pipe being the connection it went out on
        (None: not sent)."""
        try:
            ctx = ep.sock.new_context()
        except pynng.Closed:
            return None, _cancelled(), None
        except pynng.NNGException as e:
            return None, local_error(
                Code.UNAVAILABLE, policy.REASON_TRANSPORT_ERROR, f"{ep.url}: cannot open a context: {e}", True
            ), None
        try:
            sent_on: Optional[int] = None
            if ep.up:
                try:
                    await asyncio.wait_for(ctx.asend(data), max(send_end - now_ms(), 1.0) / 1000.0)
                    # (it may be down already: a gateway that dropped it at once)
                    sent_on = ep.last_pipe if ep.last_pipe is not None else -1
                except asyncio.TimeoutError:
                    pass
                except pynng.Closed:
                    return None, _cancelled(), None
                except pynng.NNGException as e:
                    return None, local_error(
                        Code.UNAVAILABLE, policy.REASON_TRANSPORT_ERROR, f"sending to {ep.url}: {e}", True
                    ), None
            if sent_on is None:
                return None, self._not_connected(call, ep), None
            wait = max(start + budget - now_ms(), 1.0)
            try:
                reply = await asyncio.wait_for(ctx.arecv(), wait / 1000.0)
            except asyncio.TimeoutError:
                return None, local_error(
                    Code.DEADLINE_EXCEEDED, policy.REASON_TRANSPORT_TIMEOUT,
                    f"no reply from {ep.url} within {budget} ms",
                ), sent_on
            except pynng.ConnectionReset:
                return None, local_error(
                    Code.UNAVAILABLE, policy.REASON_TRANSPORT_CONNECTION_LOST,
                    f"connection to {ep.url} lost while waiting for the reply (peer closed it, "
                    "or the reply exceeded max_reply_size)", True,
                ), sent_on
            except pynng.Closed:
                return None, _cancelled(), sent_on
            except pynng.NNGException as e:
                return None, local_error(
                    Code.UNAVAILABLE, policy.REASON_TRANSPORT_ERROR, f"receiving from {ep.url}: {e}", True
                ), sent_on
            return reply, None, sent_on
        finally:
            try:
                ctx.close()
            except Exception:  # the socket is closed already
                pass


class _Attempt:
    """What one attempt came to: a usable reply (rep, any status) or a failure (err);
    never_sent: the call's request provably did not leave; fleet: the fleet of the connection
    it went out on, when known and not none; final: err ends the call as it is."""

    __slots__ = ("rep", "err", "never_sent", "fleet", "final")

    def __init__(self, rep: Any = None, err: Optional[ShipgateError] = None, never_sent: bool = True,
                 fleet: Optional[str] = None, final: bool = False) -> None:
        self.rep = rep
        self.err = err
        self.never_sent = never_sent
        self.fleet = fleet
        self.final = final
