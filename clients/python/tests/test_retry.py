"""Retries, backoff, deadlines and transport failures, against a scripted in-process REP
server. Every test is bounded by its deadlines (and pytest-timeout)."""

import random
import threading
import time

import pytest

import shipgate
from shipgate import Code
from shipgate._core import Options

from conftest import DROP, NODE, Reply, free_tcp_url

TRACK_REQ = shipgate.TrackRequest(provider=shipgate.PROVIDER_BOSCOD, order_id="BOS123")
CREATE_REQ = shipgate.CreateOrderRequest(provider=shipgate.PROVIDER_BOSONLINE, form_id="f-1")
UNAVAILABLE = Reply(code=Code.UNAVAILABLE, message="upstream 503",
                    detail=dict(reason="UPSTREAM_UNAVAILABLE", retryable=True))


def fails_then_ok(n_fail, failure=UNAVAILABLE, payload=b""):
    return lambda req, n: failure if n < n_fail else Reply(payload=payload)


def gaps_ms(g):
    t = [r[0] for r in g.requests]
    return [(b - a) * 1000 for a, b in zip(t, t[1:])]


# ---------------------------------------------------------------------------- policy


def test_backoff_is_exponential_capped_and_jittered():
    o = Options.make(backoff_base_ms=50, backoff_cap_ms=1000)

    class Top:
        def uniform(self, a, b):
            return b

    class Bottom:
        def uniform(self, a, b):
            return a

    assert [o.backoff_ms(n, Top()) for n in range(1, 8)] == [50, 100, 200, 400, 800, 1000, 1000]
    assert [o.backoff_ms(n, Bottom()) for n in range(1, 4)] == [25, 50, 100]
    rng = random.Random(7)
    for n in range(1, 10):
        d = min(50 * 2 ** (n - 1), 1000)
        for _ in range(50):
            assert d / 2 <= o.backoff_ms(n, rng) <= d


# ---------------------------------------------------------------------------- idempotent calls


def test_track_retried_on_unavailable_until_ok(fake):
    g = fake(fails_then_ok(2, payload=b""))
    with shipgate.Client([g.url], backoff_base_ms=10) as c:
        r = c.track(TRACK_REQ, deadline_ms=3000, idempotency_key=None)
    assert isinstance(r, shipgate.TrackResponse)
    assert g.count == 3
    envs = [e for _, e in g.requests]
    assert len({e.request_id for e in envs}) == 1  # one call: the same request id
    assert all(e.payload == TRACK_REQ.SerializeToString() for e in envs)
    ds = [e.deadline_ms for e in envs]
    assert ds[0] <= 3000 and ds[0] > ds[1] > ds[2] > 0  # the budget left at each attempt


def test_three_attempts_in_all_then_the_last_status(fake):
    g = fake(lambda req, n: UNAVAILABLE)
    with shipgate.Client([g.url], backoff_base_ms=10) as c:
        with pytest.raises(shipgate.Unavailable) as ei:
            c.get_order({"provider": "PROVIDER_BITESHIP", "order_id": "x"}, deadline_ms=3000)
    e = ei.value
    assert g.count == 3 and e.attempts == 3 and e.reason == "UPSTREAM_UNAVAILABLE" and not e.local


def test_max_attempts_one_never_retries(fake):
    g = fake(lambda req, n: UNAVAILABLE)
    with shipgate.Client([g.url], max_attempts=1) as c:
        with pytest.raises(shipgate.Unavailable):
            c.health(deadline_ms=2000)
    assert g.count == 1


@pytest.mark.parametrize("code", [Code.NOT_FOUND, Code.INVALID_ARGUMENT, Code.RESOURCE_EXHAUSTED,
                                  Code.INTERNAL, Code.UNKNOWN, Code.FAILED_PRECONDITION])
def test_other_codes_are_not_retried(fake, code):
    g = fake(lambda req, n: Reply(code=code, detail=dict(reason="X", retryable=True)))
    with shipgate.Client([g.url], backoff_base_ms=10) as c:
        with pytest.raises(shipgate.ShipgateError) as ei:
            c.track(TRACK_REQ, deadline_ms=2000)
    assert ei.value.code == code and g.count == 1


def test_gateway_deadline_exceeded_is_not_retried(fake):
    g = fake(lambda req, n: Reply(code=Code.DEADLINE_EXCEEDED, detail=dict(reason="DEADLINE_EXPIRED")))
    with shipgate.Client([g.url], backoff_base_ms=10) as c:
        with pytest.raises(shipgate.DeadlineExceeded) as ei:
            c.track(TRACK_REQ, deadline_ms=2000)
    assert not ei.value.local and g.count == 1


def test_retry_after_is_honoured(fake):
    slow = Reply(code=Code.UNAVAILABLE, detail=dict(reason="OVERLOADED", retry_after_ms=300))
    g = fake(fails_then_ok(1, failure=slow))
    with shipgate.Client([g.url], backoff_base_ms=10) as c:
        c.health(deadline_ms=3000)
    assert g.count == 2 and gaps_ms(g)[0] >= 290


def test_retry_after_beyond_the_budget_reports_now(fake):
    slow = Reply(code=Code.UNAVAILABLE, detail=dict(reason="OVERLOADED", retry_after_ms=5000))
    g = fake(lambda req, n: slow)
    t0 = time.monotonic()
    with shipgate.Client([g.url]) as c:
        with pytest.raises(shipgate.Unavailable) as ei:
            c.health(deadline_ms=1000)
    assert time.monotonic() - t0 < 0.9
    assert g.count == 1 and ei.value.retry_after_ms == 5000 and ei.value.attempts == 1


def test_backoff_between_attempts(fake):
    g = fake(lambda req, n: UNAVAILABLE)
    with shipgate.Client([g.url], backoff_base_ms=100, backoff_cap_ms=1000) as c:
        with pytest.raises(shipgate.Unavailable):
            c.health(deadline_ms=5000)
    gaps = gaps_ms(g)
    assert len(gaps) == 2
    assert 45 <= gaps[0] <= 1000 and 95 <= gaps[1] <= 1500


def test_retries_stay_within_the_deadline(fake):
    g = fake(lambda req, n: UNAVAILABLE)
    t0 = time.monotonic()
    with shipgate.Client([g.url], max_attempts=50, backoff_base_ms=100) as c:
        # the last attempt may be the one the deadline cuts short
        with pytest.raises((shipgate.Unavailable, shipgate.DeadlineExceeded)) as ei:
            c.health(deadline_ms=600)
    assert time.monotonic() - t0 < 1.0
    assert 1 < ei.value.attempts < 50


# ---------------------------------------------------------------------------- CreateOrder and others


def test_create_order_with_its_key_is_retried_with_the_same_key(fake):
    g = fake(fails_then_ok(2), health=NODE)
    with shipgate.Client([g.url], backoff_base_ms=10) as c:
        r = c.create_order(CREATE_REQ, idempotency_key="order-77", deadline_ms=3000)
    assert isinstance(r, shipgate.CreateOrderResponse)
    assert g.count == 3 and g.probes == 1  # Health once on the connection, before the first
    assert {e.idempotency_key for _, e in g.requests} == {"order-77"}
    assert {e.method for _, e in g.requests} == {"/shipgate.v1.Shipgate/CreateOrder"}


def test_create_order_without_a_key_is_refused_locally(fake):
    g = fake(fails_then_ok(0))
    with shipgate.Client([g.url]) as c:
        for key in ("", None):
            with pytest.raises(shipgate.InvalidArgument) as ei:
                c.create_order(CREATE_REQ, idempotency_key=key)
            assert ei.value.local
        with pytest.raises(TypeError):
            c.create_order(CREATE_REQ)  # the key is a required argument
    assert g.count == 0


def test_create_order_without_a_key_is_never_retried(fake):
    # the generic call lets one send it; the gateway would refuse it, this one says UNAVAILABLE
    g = fake(lambda req, n: UNAVAILABLE)
    with shipgate.Client([g.url], backoff_base_ms=10) as c:
        with pytest.raises(shipgate.Unavailable) as ei:
            c.call("CreateOrder", CREATE_REQ, deadline_ms=2000)
    assert g.count == 1 and ei.value.attempts == 1


def test_foreign_method_retried_only_with_a_key(fake):
    g = fake(lambda req, n: UNAVAILABLE, health=NODE)
    with shipgate.Client([g.url], backoff_base_ms=10) as c:
        with pytest.raises(shipgate.Unavailable):
            c.call("/other.v1.Svc/Do", b"", deadline_ms=2000)
        assert g.count == 1
        with pytest.raises(shipgate.Unavailable):
            c.call("/other.v1.Svc/Do", b"", deadline_ms=2000, idempotency_key="k")
        assert g.count == 4 and g.probes == 1  # keyed: Health first


# ---------------------------------------------------------------------------- transport


def test_no_reply_times_out_at_the_deadline(fake):
    g = fake(lambda req, n: None)
    t0 = time.monotonic()
    with shipgate.Client([g.url]) as c:
        with pytest.raises(shipgate.DeadlineExceeded) as ei:
            c.track(TRACK_REQ, deadline_ms=300)
    took = time.monotonic() - t0
    e = ei.value
    assert e.local and e.reason == "TRANSPORT_TIMEOUT" and e.attempts == 1
    assert 0.28 <= took < 0.8 and g.count == 1


def test_attempt_timeout_retries_idempotent_calls(fake):
    g = fake(lambda req, n: None if n == 0 else Reply())
    with shipgate.Client([g.url], attempt_timeout_ms=150, backoff_base_ms=10) as c:
        c.health(deadline_ms=3000)
    assert g.count == 2
    # the attempt's own budget goes in the envelope, less the reply margin min(50, 150 // 5)
    assert g.requests[0][1].deadline_ms == 120


def test_attempt_timeout_does_not_retry_a_keyless_foreign_call(fake):
    g = fake(lambda req, n: None)
    with shipgate.Client([g.url], attempt_timeout_ms=150) as c:
        with pytest.raises(shipgate.Unknown) as ei:
            c.call("/other.v1.Svc/Do", b"", deadline_ms=3000)
    e = ei.value
    assert e.reason == "OUTCOME_UNKNOWN" and "TRANSPORT_TIMEOUT" in e.message and g.count == 1


def test_connection_lost_while_waiting(fake):
    g = fake(lambda req, n: DROP)
    with shipgate.Client([g.url], max_attempts=1) as c:
        with pytest.raises(shipgate.Unavailable) as ei:
            c.track(TRACK_REQ, deadline_ms=3000)
    e = ei.value
    assert e.local and e.reason == "TRANSPORT_CONNECTION_LOST" and e.retryable


def test_connection_lost_then_retried_on_the_new_connection(fake):
    g = fake(lambda req, n: DROP if n == 0 else Reply())
    with shipgate.Client([g.url], backoff_base_ms=10) as c:
        c.health(deadline_ms=5000)
    assert g.count == 2


def test_connection_lost_is_not_retried_for_keyless_create_order(fake):
    g = fake(lambda req, n: DROP)
    with shipgate.Client([g.url], backoff_base_ms=10) as c:
        with pytest.raises(shipgate.Unknown) as ei:
            c.call("CreateOrder", CREATE_REQ, deadline_ms=3000)
    assert ei.value.reason == "OUTCOME_UNKNOWN" and ei.value.attempts == 1
    time.sleep(0.2)
    assert g.count == 1  # nng never resent it either


# ---------------------------------------------------------------------------- the retry rule


def wait_connected(c, n):
    deadline = time.monotonic() + 3
    while c.connected() < n and time.monotonic() < deadline:
        time.sleep(0.01)
    assert c.connected() == n


def test_gateway_deadline_exceeded_is_not_retried(fake):
    g = fake(lambda req, n: Reply(code=Code.DEADLINE_EXCEEDED, message="deadline exceeded",
                                  detail=dict(reason="DEADLINE_EXPIRED", retryable=True))
             if n == 0 else Reply())
    # budget is left after the attempt, and still: the gateway spent what it was given
    with shipgate.Client([g.url], attempt_timeout_ms=500, backoff_base_ms=10) as c:
        with pytest.raises(shipgate.DeadlineExceeded) as ei:
            c.health(deadline_ms=3000)
    e = ei.value
    assert not e.local and e.reason == "DEADLINE_EXPIRED" and e.attempts == 1 and g.count == 1
    assert g.requests[0][1].deadline_ms == 450  # 500 less the reply margin


@pytest.mark.parametrize("keyed", [True, False])
def test_create_order_is_not_retried_when_its_gateway_dies(fake, keyed):
    """kill -9 of the gateway that holds the CreateOrder: no second gateway sees it."""
    a = fake(lambda req, n: DROP, health=NODE)  # its keys are its own
    b = fake(lambda req, n: Reply())
    with shipgate.Client([a.url, b.url], backoff_base_ms=10) as c:
        wait_connected(c, 2)
        with pytest.raises(shipgate.Unknown) as ei:
            if keyed:
                c.create_order(CREATE_REQ, idempotency_key="order-lost", deadline_ms=3000)
            else:
                c.call("CreateOrder", CREATE_REQ, deadline_ms=3000)
        e = ei.value
        assert e.local and not e.retryable and e.reason == "OUTCOME_UNKNOWN" and e.attempts == 1
        assert "TRANSPORT_CONNECTION_LOST" in e.message
        assert a.count == 1 and b.count == 0 and a.probes == (1 if keyed else 0)
    # a read in the same place goes on to the other gateway
    with shipgate.Client([a.url, b.url], backoff_base_ms=10) as c:
        wait_connected(c, 2)
        c.track(TRACK_REQ, deadline_ms=3000)  # a new client's first attempt: a, dropped; then b
    assert a.count == 2 and b.count == 1


def test_create_order_is_not_retried_after_a_transport_timeout(fake):
    # a answers the keyed call's Health probe (its keys are its own), then nothing
    a = fake(lambda req, n: None, health=lambda req, n: NODE if n == 0 else None)
    b = fake(lambda req, n: Reply())
    with shipgate.Client([a.url, b.url], attempt_timeout_ms=200, backoff_base_ms=10) as c:
        wait_connected(c, 2)
        with pytest.raises(shipgate.Unknown) as ei:
            c.create_order(CREATE_REQ, idempotency_key="order-silent", deadline_ms=3000)
        assert ei.value.reason == "OUTCOME_UNKNOWN" and "TRANSPORT_TIMEOUT" in ei.value.message
        assert ei.value.attempts == 1 and a.count == 1 and b.count == 0
        c.health(deadline_ms=3000)  # b's turn
        c.health(deadline_ms=3000)  # a's: its own timeout, then b
    assert a.count == 1 and a.probes == 2 and b.count == 2  # a: the probe, then that Health


def test_keyed_create_order_is_retried_after_the_gateways_unavailable(fake):
    g = fake(fails_then_ok(1), health=NODE)
    with shipgate.Client([g.url], backoff_base_ms=10) as c:
        c.create_order(CREATE_REQ, idempotency_key="order-503", deadline_ms=3000)
    assert g.count == 2 and {e.idempotency_key for _, e in g.requests} == {"order-503"}


def test_nobody_listening_is_not_connected():
    url = free_tcp_url()
    t0 = time.monotonic()
    with shipgate.Client([url], connect_timeout_ms=100, backoff_base_ms=10) as c:
        with pytest.raises(shipgate.Unavailable) as ei:
            # never sent, so even a keyless CreateOrder is retried
            c.call("CreateOrder", CREATE_REQ, deadline_ms=3000)
        e = ei.value
        assert e.local and e.reason == "TRANSPORT_NOT_CONNECTED" and e.retryable
        assert e.attempts == 3
        assert c.connected() == 0
    with shipgate.Client([url], connect_timeout_ms=1000) as c:
        # the budget ends before the connect timeout: the deadline is what ran out
        with pytest.raises(shipgate.DeadlineExceeded) as ei:
            c.health(deadline_ms=150)
        assert ei.value.reason == "TRANSPORT_NOT_CONNECTED" and not ei.value.retryable
        assert ei.value.attempts == 1
    assert time.monotonic() - t0 < 2.5


def test_gateway_that_starts_late_is_reached(fake):
    url = free_tcp_url()
    with shipgate.Client([url], connect_timeout_ms=2000) as c:
        def start_later():
            time.sleep(0.3)
            fake(lambda req, n: Reply(), url=url)
        t = threading.Thread(target=start_later)
        t.start()
        c.health(deadline_ms=4000)
        t.join()
        assert c.connected() == 1


def test_round_robin_over_addresses(fake):
    a = fake(lambda req, n: Reply())
    b = fake(lambda req, n: Reply())
    with shipgate.Client([a.url, b.url]) as c:
        deadline = time.monotonic() + 3
        while c.connected() < 2 and time.monotonic() < deadline:
            time.sleep(0.01)
        for _ in range(6):
            c.health(deadline_ms=2000)
    assert a.count == 3 and b.count == 3


def test_connected_addresses_are_preferred(fake):
    a = fake(lambda req, n: Reply())
    with shipgate.Client([free_tcp_url(), a.url], connect_timeout_ms=200) as c:
        for _ in range(5):
            r = c.health(deadline_ms=2000)
            assert isinstance(r, shipgate.HealthResponse)
    assert a.count == 5


# ---------------------------------------------------------------------------- closing


def test_close_cancels_calls_in_flight(fake):
    g = fake(lambda req, n: None)
    c = shipgate.Client([g.url])
    out = {}

    def call():
        try:
            c.track(TRACK_REQ, deadline_ms=10000)
        except shipgate.ShipgateError as e:
            out["e"] = e

    t = threading.Thread(target=call)
    t.start()
    deadline = time.monotonic() + 3
    while g.count == 0 and time.monotonic() < deadline:
        time.sleep(0.01)
    t0 = time.monotonic()
    c.close()
    t.join(5)
    assert time.monotonic() - t0 < 2
    e = out["e"]
    assert isinstance(e, shipgate.Cancelled) and e.reason == "CLIENT_CANCELLED" and e.local
    with pytest.raises(shipgate.Cancelled):
        c.health()
    c.close()  # idempotent
