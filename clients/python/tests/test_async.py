"""The asyncio client: same behaviour, concurrent calls (one nng context each), cancellation."""

import asyncio
import threading
import time

import pytest

import shipgate
from shipgate import Code

from conftest import Reply

TRACK_REQ = shipgate.TrackRequest(provider=shipgate.PROVIDER_BOSCOD, order_id="BOS123")


def run(coro):
    return asyncio.run(asyncio.wait_for(coro, 30))


def test_async_ok_and_errors(fake):
    resp = shipgate.TrackResponse()
    resp.tracking.order_id = "BOS123"

    def handler(req, n):
        if req.method.endswith("/Track"):
            return Reply(payload=resp.SerializeToString())
        return Reply(code=Code.NOT_FOUND, detail=dict(reason="UPSTREAM_NOT_FOUND"))

    g = fake(handler)

    async def main():
        async with shipgate.AsyncClient([g.url]) as c:
            r = await c.track(TRACK_REQ, deadline_ms=2000, metadata={"caller": "t"})
            assert r.tracking.order_id == "BOS123"
            with pytest.raises(shipgate.NotFound) as ei:
                await c.get_order({"provider": "PROVIDER_BITESHIP", "order_id": "x"})
            assert ei.value.attempts == 1 and not ei.value.local
            with pytest.raises(shipgate.DeadlineExceeded) as ei:
                await c.health(deadline_ms=-1)
            assert ei.value.reason == "CLIENT_DEADLINE_EXPIRED"
            with pytest.raises(shipgate.InvalidArgument):
                await c.create_order(shipgate.CreateOrderRequest(), idempotency_key="")

    run(main())
    assert g.count == 2


def test_async_retries(fake):
    g = fake(lambda req, n: Reply(code=Code.UNAVAILABLE) if n < 2 else Reply())

    async def main():
        async with shipgate.AsyncClient([g.url], backoff_base_ms=10) as c:
            await c.health(deadline_ms=3000)

    run(main())
    assert g.count == 3


def test_async_calls_run_concurrently(fake):
    n = 10
    g = fake(lambda req, i: Reply(delay_s=0.3), workers=n)

    async def main():
        async with shipgate.AsyncClient([g.url]) as c:
            t0 = time.monotonic()
            rs = await asyncio.gather(*(c.health(deadline_ms=5000) for _ in range(n)))
            return rs, time.monotonic() - t0

    rs, took = run(main())
    assert len(rs) == n and all(isinstance(r, shipgate.HealthResponse) for r in rs)
    assert took < 1.5, f"{n} calls of 300 ms took {took:.2f} s"
    assert len({e.request_id for _, e in g.requests}) == n


def test_sync_calls_from_threads_run_concurrently(fake):
    n = 8
    g = fake(lambda req, i: Reply(delay_s=0.3), workers=n)
    errors = []
    with shipgate.Client([g.url]) as c:
        c.health(deadline_ms=2000)  # connected
        t0 = time.monotonic()

        def one():
            try:
                c.health(deadline_ms=5000)
            except Exception as e:  # pragma: no cover - reported below
                errors.append(e)

        ts = [threading.Thread(target=one) for _ in range(n)]
        for t in ts:
            t.start()
        for t in ts:
            t.join(10)
        took = time.monotonic() - t0
    assert not errors and took < 1.5


def test_caller_cancellation_propagates_and_the_client_goes_on(fake):
    g = fake(lambda req, n: None if n == 0 else Reply())

    async def main():
        async with shipgate.AsyncClient([g.url]) as c:
            with pytest.raises(asyncio.TimeoutError):
                await asyncio.wait_for(c.track(TRACK_REQ, deadline_ms=10000), 0.2)
            assert c.in_flight == 0
            await c.health(deadline_ms=2000)

    run(main())
    assert g.count == 2


def test_aclose_cancels_calls_in_flight(fake):
    g = fake(lambda req, n: None)

    async def main():
        c = shipgate.AsyncClient([g.url])
        task = asyncio.ensure_future(c.track(TRACK_REQ, deadline_ms=10000))
        while g.count == 0:
            await asyncio.sleep(0.01)
        t0 = time.monotonic()
        await c.aclose()
        with pytest.raises(shipgate.Cancelled) as ei:
            await task
        assert ei.value.reason == "CLIENT_CANCELLED" and time.monotonic() - t0 < 2
        with pytest.raises(shipgate.Cancelled):
            await c.health()

    run(main())


def test_close_wakes_a_backoff(fake):
    g = fake(lambda req, n: Reply(code=Code.UNAVAILABLE, detail=dict(retry_after_ms=5000)))

    async def main():
        c = shipgate.AsyncClient([g.url])
        task = asyncio.ensure_future(c.health(deadline_ms=20000))
        while g.count == 0:
            await asyncio.sleep(0.01)
        await asyncio.sleep(0.05)
        t0 = time.monotonic()
        c.close()
        with pytest.raises(shipgate.Cancelled):
            await task
        assert time.monotonic() - t0 < 1

    run(main())


def test_one_client_several_loops(fake):
    g = fake(lambda req, n: Reply())
    c = shipgate.AsyncClient([g.url])
    try:
        for _ in range(3):
            asyncio.run(c.health(deadline_ms=2000))
    finally:
        c.close()
    assert g.count == 3
