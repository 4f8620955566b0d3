"""Keyed calls and fleets (proto/shipgate/v1/client_policy.json, section fleet): Health once per
connection before a keyed call, a retry after a lost or timed-out keyed call only within one
fleet, and what such a call reports in the end. Against the scripted REP fakes, with the
synchronous and the asyncio client. Every test is bounded by its deadlines."""

import asyncio
import time

import pytest

import shipgate
from shipgate import Code

from conftest import DROP, HEALTH, NODE, Reply, fleet, free_tcp_url, health_reply

CREATE_REQ = shipgate.CreateOrderRequest(provider=shipgate.PROVIDER_BOSONLINE, form_id="f-1")
TRACK_REQ = shipgate.TrackRequest(provider=shipgate.PROVIDER_BOSCOD, order_id="BOS123")


def created(replayed=False):
    r = shipgate.CreateOrderResponse(replayed=replayed, message="created")
    return Reply(payload=r.SerializeToString())


def status(code, reason, message="", retryable=False):
    return Reply(code=code, message=message or f"the gateway's {reason}",
                 detail=dict(reason=reason, retryable=retryable))


class AsyncFlavour:
    """An AsyncClient driven from the test's thread, on an event loop of its own."""

    def __init__(self, addresses, **kw):
        self.loop = asyncio.new_event_loop()
        self.c = shipgate.AsyncClient(addresses, **kw)

    def connected(self):
        return self.c.connected()

    def __getattr__(self, name):
        fn = getattr(self.c, name)
        return lambda *a, **kw: self.loop.run_until_complete(asyncio.wait_for(fn(*a, **kw), 30))

    def close(self):
        self.loop.run_until_complete(self.c.aclose())
        self.loop.close()


@pytest.fixture(params=["sync", "async"])
def client(request):
    """client(addresses, **options) -> a Client, or an AsyncClient behind the same calls."""
    made = []

    def make(addresses, **kw):
        c = shipgate.Client(addresses, **kw) if request.param == "sync" else AsyncFlavour(addresses, **kw)
        made.append(c)
        return c

    yield make
    for c in made:
        c.close()


def wait_connected(c, n, timeout=3.0):
    deadline = time.monotonic() + timeout
    while c.connected() != n and time.monotonic() < deadline:
        time.sleep(0.002)
    assert c.connected() == n


def endpoint(c, i=0):
    """The client's i-th address (internals: which connection is up)."""
    inner = c._async if isinstance(c, shipgate.Client) else c.c
    return inner._eps[i]


def wait_new_connection(c, old, timeout=3.0):
    """Until the client's first address is up on another connection than ``old``. (Not
    connected() == 0 first: nng may redial at once, and the new connection may come up before
    the old one's removal is reported.)"""
    deadline = time.monotonic() + timeout
    while endpoint(c).pipe in (None, old) and time.monotonic() < deadline:
        time.sleep(0.002)
    assert endpoint(c).pipe not in (None, old)


def create(c, key="order-1", **kw):
    kw.setdefault("deadline_ms", 3000)
    return c.create_order(CREATE_REQ, idempotency_key=key, **kw)


def pair(fake, first, second, first_health, second_health):
    """Two fakes; the client is made with [a, b] and both connected, so a gets the first
    attempt (round robin from the first address)."""
    a = fake(first if callable(first) else (lambda req, n: first), health=first_health)
    b = fake(second if callable(second) else (lambda req, n: second), health=second_health)
    return a, b


# ---------------------------------------------------------------------------- the probe


def test_keyed_call_asks_health_once_per_connection(fake, client):
    g = fake(lambda req, n: created(), health=NODE)
    c = client([g.url])
    create(c, "order-1", request_id="rid-1")
    assert g.probes == 1 and g.methods() == ["CreateOrder"]
    t_probe, probe, probe_pipe = g.health_requests[0]
    assert probe.method == HEALTH and probe.idempotency_key == "" and probe.payload == b""
    assert probe.request_id == "rid-1" and not probe.metadata  # the call's id, as the C client
    assert 0 < probe.deadline_ms <= 3000
    assert t_probe < g.requests[0][0] and probe_pipe == g.request_pipes[0]  # first, same connection
    create(c, "order-2")  # the same connection: its fleet is known
    assert g.probes == 1 and g.count == 2
    # idempotent calls and keyless ones never ask
    c.track(TRACK_REQ, deadline_ms=2000)
    c.get_order({"provider": "PROVIDER_BITESHIP", "order_id": "x"}, deadline_ms=2000)
    c.call("CreateOrder", CREATE_REQ, deadline_ms=2000)
    c.call("/other.v1.Svc/Do", b"", deadline_ms=2000)
    assert g.probes == 1 and g.count == 6
    c.health(deadline_ms=2000)  # the caller's own Health: that one request, no probe
    assert g.probes == 2
    # the connection is replaced: asked again, on the new one
    old = endpoint(c).pipe
    assert g.drop_connections() == 1
    wait_new_connection(c, old)
    create(c, "order-3")
    assert g.probes == 3 and g.count == 7
    assert g.health_requests[2][2] != probe_pipe and g.health_requests[2][2] == g.request_pipes[-1]


def test_keyed_call_asks_again_after_a_gateway_restart(fake, client):
    url = free_tcp_url()
    g1 = fake(lambda req, n: created(), url=url, health=fleet("F1"))
    c = client([url], connect_timeout_ms=2500)
    create(c, "order-1")
    assert g1.probes == 1 and g1.count == 1
    g1.close()
    wait_connected(c, 0)
    g2 = fake(lambda req, n: created(), url=url, health=fleet("F2"))
    create(c, "order-2")
    assert g2.probes == 1 and g2.count == 1 and g2.health_requests[0][0] < g2.requests[0][0]


def test_a_health_call_of_the_callers_tells_the_fleet_too(fake, client):
    g = fake(lambda req, n: created(), health=fleet("F"))
    c = client([g.url])
    assert c.health(deadline_ms=2000).fleet_id == "F"
    create(c)
    assert g.probes == 1 and g.count == 1


def test_probe_uses_the_calls_budget_bounded_by_the_attempts(fake, client):
    g = fake(lambda req, n: created(), health=NODE)
    c = client([g.url], attempt_timeout_ms=400)
    create(c, deadline_ms=3000)
    # like an attempt's envelope: 400 less the reply margin min(50, 400 // 5)
    assert g.health_requests[0][1].deadline_ms == 350 and g.requests[0][1].deadline_ms == 350
    h = fake(lambda req, n: created(), health=NODE)
    c = client([h.url])
    create(c, deadline_ms=3000)
    pd, cd = h.health_requests[0][1].deadline_ms, h.requests[0][1].deadline_ms
    assert 2500 < pd <= 2950 and 2500 < cd <= pd


@pytest.mark.parametrize("lost", [DROP, None], ids=["dropped", "no-answer"])
def test_probe_failing_in_transport_is_an_attempt_whose_request_was_not_sent(fake, client, lost):
    a, b = pair(fake, created(), created(), lambda req, n: lost, NODE)
    c = client([a.url, b.url], attempt_timeout_ms=200, backoff_base_ms=10)
    wait_connected(c, 2)
    r = create(c)
    assert isinstance(r, shipgate.CreateOrderResponse) and not r.replayed
    assert a.probes == 1 and a.count == 0  # the CreateOrder never reached a
    assert b.probes == 1 and b.count == 1


def test_probe_failures_count_as_attempts(fake, client):
    g = fake(lambda req, n: created(), health=lambda req, n: DROP)
    c = client([g.url], max_attempts=2, backoff_base_ms=10)
    with pytest.raises(shipgate.Unavailable) as ei:
        create(c, deadline_ms=4000)
    e = ei.value
    assert e.local and e.reason == "TRANSPORT_CONNECTION_LOST" and e.attempts == 2
    assert "Health probe" in e.message and "not sent" in e.message
    assert g.probes == 2 and g.count == 0


# ---------------------------------------------------------------------------- node: no failover


@pytest.mark.parametrize(
    "health",
    [NODE, status(Code.UNIMPLEMENTED, "UNKNOWN_METHOD"), health_reply("fleet", ""),
     Reply(payload=b"\xff\xff\xff"), Reply(raw=b"\xff\xff\xff")],
    ids=["node", "error-status", "fleet-without-id", "bad-payload", "bad-reply"],
)
def test_no_fleet_lost_after_sending_is_outcome_unknown(fake, client, health):
    a, b = pair(fake, DROP, created(), health, fleet("F"))
    c = client([a.url, b.url], backoff_base_ms=10)
    wait_connected(c, 2)
    with pytest.raises(shipgate.Unknown) as ei:
        create(c)
    e = ei.value
    assert e.local and not e.retryable and e.reason == "OUTCOME_UNKNOWN" and e.attempts == 1
    assert "TRANSPORT_CONNECTION_LOST" in e.message
    assert a.probes == 1 and a.count == 1 and b.probes == 0 and b.count == 0


def test_node_timeout_after_sending_is_outcome_unknown(fake, client):
    a, b = pair(fake, None, created(), NODE, NODE)
    c = client([a.url, b.url], attempt_timeout_ms=200, backoff_base_ms=10)
    wait_connected(c, 2)
    with pytest.raises(shipgate.Unknown) as ei:
        create(c)
    e = ei.value
    assert e.reason == "OUTCOME_UNKNOWN" and "TRANSPORT_TIMEOUT" in e.message and e.attempts == 1
    assert a.count == 1 and b.count == 0 and b.probes == 0


# ---------------------------------------------------------------------------- one fleet: failover


@pytest.mark.parametrize("lost", [DROP, None], ids=["dropped", "timed-out"])
def test_same_fleet_fails_over_and_returns_the_other_gateways_answer(fake, client, lost):
    a, b = pair(fake, lost, created(replayed=True), fleet("F"), fleet("F"))
    c = client([a.url, b.url], attempt_timeout_ms=200, backoff_base_ms=10)
    wait_connected(c, 2)
    r = create(c, "order-fleet", request_id="rid-fleet", deadline_ms=5000)
    assert r.replayed is True
    assert a.count == 1 and b.count == 1 and a.probes == 1 and b.probes == 1
    ea, eb = a.requests[0][1], b.requests[0][1]
    assert ea.idempotency_key == eb.idempotency_key == "order-fleet"
    assert ea.request_id == eb.request_id == "rid-fleet" and ea.payload == eb.payload
    assert b.health_requests[0][0] < b.requests[0][0]  # b asked before it got the CreateOrder


def test_same_fleet_single_address_retries_on_the_same_connection(fake, client):
    g = fake(lambda req, n: None if n == 0 else created(replayed=True), health=fleet("F"))
    c = client([g.url], attempt_timeout_ms=200, backoff_base_ms=10)
    assert create(c).replayed is True
    assert g.count == 2 and g.probes == 1


@pytest.mark.parametrize(
    "health,says",
    [(fleet("G"), "fleet 'G'"), (NODE, "no fleet"),
     (status(Code.UNAVAILABLE, "OVERLOADED", retryable=True), "no fleet"),
     (health_reply("fleet", ""), "no fleet")],
    ids=["other-fleet", "node", "error-status", "fleet-without-id"],
)
def test_another_fleet_ends_outcome_unknown_without_sending(fake, client, health, says):
    a, b = pair(fake, DROP, created(replayed=True), fleet("F"), health)
    c = client([a.url, b.url], backoff_base_ms=10)
    wait_connected(c, 2)
    with pytest.raises(shipgate.Unknown) as ei:
        create(c)
    e = ei.value
    assert e.local and not e.retryable and e.reason == "OUTCOME_UNKNOWN" and e.attempts == 2
    assert a.url in e.message and b.url in e.message and "fleet 'F'" in e.message and says in e.message
    assert a.count == 1 and b.probes == 1 and b.count == 0  # b never got the CreateOrder


def test_failover_needs_attempts_left(fake, client):
    a, b = pair(fake, DROP, created(), fleet("F"), fleet("F"))
    c = client([a.url, b.url], max_attempts=1)
    wait_connected(c, 2)
    with pytest.raises(shipgate.Unknown) as ei:
        create(c)
    e = ei.value
    assert e.local and e.reason == "OUTCOME_UNKNOWN" and e.attempts == 1
    assert "TRANSPORT_CONNECTION_LOST" in e.message and a.url in e.message
    assert b.probes == 0 and b.count == 0


# ---------------------------------------------------------------------------- how a failover ends


@pytest.mark.parametrize(
    "answer",
    [status(Code.DEADLINE_EXCEEDED, "DEADLINE_EXPIRED"),
     status(Code.UNAVAILABLE, "IDEMPOTENCY_STORE_UNAVAILABLE", retryable=True),
     status(Code.ABORTED, "IDEMPOTENCY_KEY_IN_PROGRESS", retryable=True),
     status(Code.RESOURCE_EXHAUSTED, "OUT_OF_MEMORY", retryable=True)],
    ids=["deadline-exceeded", "unavailable", "aborted", "resource-exhausted"],
)
def test_after_a_failover_an_answer_that_does_not_settle_is_outcome_unknown(fake, client, answer):
    a, b = pair(fake, DROP, answer, fleet("F"), fleet("F"))
    c = client([a.url, b.url], max_attempts=2, backoff_base_ms=10)
    wait_connected(c, 2)
    with pytest.raises(shipgate.Unknown) as ei:
        create(c)
    e = ei.value
    assert e.local and not e.retryable and e.reason == "OUTCOME_UNKNOWN" and e.attempts == 2
    # what happened is kept: the first address, the last one and the gateway's status
    assert a.url in e.message and b.url in e.message and answer.detail["reason"] in e.message
    assert Code(answer.code).name in e.message
    assert a.count == 1 and b.count == 1


def test_after_a_failover_a_local_failure_is_outcome_unknown(fake, client):
    a, b = pair(fake, DROP, None, fleet("F"), fleet("F"))  # b takes it and never answers
    c = client([a.url, b.url], max_attempts=2, attempt_timeout_ms=200, backoff_base_ms=10)
    wait_connected(c, 2)
    with pytest.raises(shipgate.Unknown) as ei:
        create(c)
    e = ei.value
    assert e.local and e.reason == "OUTCOME_UNKNOWN" and e.attempts == 2
    assert "TRANSPORT_TIMEOUT" in e.message and a.count == 1 and b.count == 1


def test_unavailable_after_a_failover_is_retried_within_the_fleet(fake, client):
    a, b = pair(fake, DROP, status(Code.UNAVAILABLE, "IDEMPOTENCY_STORE_UNAVAILABLE", retryable=True),
                fleet("F"), fleet("F"))
    c = client([a.url, b.url], backoff_base_ms=10)
    wait_connected(c, 2)
    with pytest.raises(shipgate.Unknown) as ei:
        create(c)
    e = ei.value
    assert e.local and e.reason == "OUTCOME_UNKNOWN" and e.attempts == 3
    assert a.count + b.count == 3 and b.count >= 1


@pytest.mark.parametrize(
    "answer,exc",
    [(status(Code.UNKNOWN, "OUTCOME_UNKNOWN", "outcome unknown: the owner's lease is over"), shipgate.Unknown),
     (status(Code.FAILED_PRECONDITION, "IDEMPOTENCY_KEY_REUSED"), shipgate.FailedPrecondition),
     (status(Code.INVALID_ARGUMENT, "INVALID_FIELD"), shipgate.InvalidArgument)],
    ids=["gateway-outcome-unknown", "failed-precondition", "invalid-argument"],
)
def test_after_a_failover_an_answer_that_settles_is_reported_as_is(fake, client, answer, exc):
    a, b = pair(fake, DROP, answer, fleet("F"), fleet("F"))
    c = client([a.url, b.url], backoff_base_ms=10)
    wait_connected(c, 2)
    with pytest.raises(exc) as ei:
        create(c)
    e = ei.value
    assert not e.local and e.reason == answer.detail["reason"] and e.message == answer.message
    assert e.attempts == 2 and a.count == 1 and b.count == 1
