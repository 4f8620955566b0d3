"""Keyed CreateOrders across two real gateways (proto/shipgate/v1/client_policy.json, section
fleet): a fleet of two on one redis-server, and two with a store each. The sandbox holds the
bosOnline CreateOrder of form SLOW-1500 for 1.5 s, so a gateway can be killed (or cut off from
the client) while it holds the POST; every scenario ends with exactly one POST.

Which gateway gets the first attempt is not guessed: the client is connected to both before the
call, so its round robin starts at its first address, and the test checks that by asking each
gateway's Health for its in_flight (the one holding the CreateOrder counts it).

Each scenario runs with one client flavour (the synchronous client runs the asyncio one on a
thread of its own; tests/test_fleet.py runs every rule with both): a gateway's hold costs
seconds."""

from __future__ import annotations

import asyncio
import json
import os
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from google.protobuf import json_format

import shipgate

from conftest import REPO, Cluster, Redis, TcpProxy

POSTS = "/bosonline/order/"
HOLD_S = 1.5  # the sandbox's hold of SLOW-1500

CASES_FILE = os.environ.get("SHIPGATE_INTEROP_CASES", str(REPO / "tests" / "interop" / "cases.json"))


def _slow_create() -> shipgate.CreateOrderRequest:
    """The case list's CreateOrder (the document's example) with form id SLOW-1500."""
    with open(CASES_FILE, encoding="utf-8") as f:
        cases = json.load(f)["cases"]
    case = next(c for c in cases if c["name"] == "create order: the document's example")
    req = dict(case["request"], formId="SLOW-1500")
    return json_format.ParseDict(req, shipgate.CreateOrderRequest())


SLOW = _slow_create()


@pytest.fixture(scope="module")
def fleet():
    """Two gateways of one fleet: the Redis store on one redis-server (fleet_id: its url)."""
    rd = Redis()
    try:
        cl = Cluster(2, sets=("idempotency.store=redis", f"idempotency.redis_url={rd.url}"))
    except BaseException:
        rd.stop()
        raise
    cl.redis = rd
    yield cl
    try:
        rcs = cl.stop()
    finally:
        rd.stop()
    assert rcs and all(rc == 0 for rc in rcs), f"gateways' and sandbox's exit codes: {rcs}"


@pytest.fixture(scope="module")
def nodes():
    """Two gateways with a SQLite store each (their own state directories): scope node."""
    cl = Cluster(2)
    yield cl
    rcs = cl.stop()
    assert rcs and all(rc == 0 for rc in rcs), f"gateways' and sandbox's exit codes: {rcs}"


@pytest.fixture
def cluster(request):
    """The fleet or nodes fixture (by name in the test's parameters), every gateway running."""
    cl = request.getfixturevalue(request.param)
    cl.revive()
    cl.reset()
    return cl


class Caller:
    """A client of one flavour given some addresses; create() runs a CreateOrder in a thread of
    its own (the async one on an event loop there) and returns its future."""

    def __init__(self, flavour: str, addresses, **opts: Any) -> None:
        self.flavour = flavour
        self.c = (shipgate.Client if flavour == "sync" else shipgate.AsyncClient)(addresses, **opts)
        self.pool = ThreadPoolExecutor(1)
        end = time.monotonic() + 3
        while self.c.connected() < len(addresses) and time.monotonic() < end:
            time.sleep(0.005)
        assert self.c.connected() == len(addresses), "the client connects to every address first"

    def create(self, key: str, deadline_ms: int):
        if self.flavour == "sync":
            return self.pool.submit(self.c.create_order, SLOW, idempotency_key=key,
                                    deadline_ms=deadline_ms)
        return self.pool.submit(
            lambda: asyncio.run(self.c.create_order(SLOW, idempotency_key=key, deadline_ms=deadline_ms)))

    def close(self) -> None:
        self.pool.shutdown(wait=True)
        self.c.close()


def health_of(url: str) -> shipgate.HealthResponse:
    with shipgate.Client([url], max_attempts=1) as c:
        return c.health(deadline_ms=2000)


def holder(cl: Cluster) -> int:
    """The index of the gateway handling the CreateOrder now: its Health counts it in
    in_flight, besides the Health itself."""
    busy = [i for i, u in enumerate(cl.urls) if health_of(u).in_flight > 1]
    assert len(busy) == 1, f"gateways handling a call: {busy}"
    return busy[0]


def wait_post(cl: Cluster) -> float:
    """Until the sandbox has the POST (held now); the time it was seen."""
    assert cl.wait_count(POSTS, 1) == 1, "the CreateOrder's POST did not reach the sandbox"
    return time.monotonic()


def past_hold(t_post: float) -> None:
    """Sleeps until the sandbox's hold of the first POST is over (a second POST, had the call
    been sent again anywhere, would be recorded by then)."""
    left = t_post + HOLD_S + 0.2 - time.monotonic()
    if left > 0:
        time.sleep(left)


# ---------------------------------------------------------------------------- the fleet


def test_the_fleet_reports_itself_in_health(fleet):
    for u in fleet.urls:
        h = health_of(u)
        assert (h.idempotency_store, h.idempotency_scope, h.fleet_id) == ("redis", "fleet", fleet.redis.url)


@pytest.mark.parametrize("flavour", ["sync"])
@pytest.mark.parametrize("cluster", ["fleet"], indirect=True)
def test_fleet_kill_of_the_gateway_holding_the_post_is_outcome_unknown(cluster, flavour):
    """kill -9 of the first gateway while it holds the POST: the client moves to the second
    (same fleet), which waits for the dead owner's key until the budget is spent; the call is
    UNKNOWN / OUTCOME_UNKNOWN (the second gateway's own, or the client's after it), never OK,
    and the sandbox sees one POST."""
    caller = Caller(flavour, list(cluster.urls))
    try:
        fut = caller.create(f"py-fleet-kill-{flavour}", deadline_ms=2500)
        t_post = wait_post(cluster)
        assert holder(cluster) == 0  # the client's first pick: its first address
        assert cluster.kill(0) == -9
        e = fut.exception(15)
    finally:
        caller.close()
    assert isinstance(e, shipgate.Unknown) and e.reason == "OUTCOME_UNKNOWN", repr(e)
    assert not e.retryable and e.attempts == 2, repr(e)  # it did move to the second gateway
    past_hold(t_post)
    assert cluster.count(POSTS) == 1


@pytest.mark.parametrize("flavour", ["async"])
@pytest.mark.parametrize("cluster", ["fleet"], indirect=True)
def test_fleet_attempt_timeout_fails_over_and_gets_the_first_gateways_answer_replayed(cluster, flavour):
    """The first gateway's answer never reaches the client (a proxy between them holds it back;
    the gateway lives on and completes the POST): the attempt times out, the client moves to
    the second gateway of the fleet, which replays the first one's outcome. One POST.

    attempt_timeout_ms is 2000 rather than shorter: the envelope tells the gateway the attempt's
    budget (less 50 ms), and a gateway given less than the sandbox's 1.5 s hold answers its own
    OUTCOME_UNKNOWN in time (next test), so no attempt would time out."""
    u0 = cluster.urls[0]
    px = TcpProxy(int(u0.rsplit(":", 1)[1]))
    caller = Caller(flavour, [px.url, cluster.urls[1]], attempt_timeout_ms=2000)
    try:
        fut = caller.create(f"py-fleet-timeout-{flavour}", deadline_ms=5000)
        wait_post(cluster)
        assert holder(cluster) == 0  # through the proxy: the first address
        px.hold()
        r = fut.result(15)
    finally:
        caller.close()
        px.close()
    assert isinstance(r, shipgate.CreateOrderResponse)
    assert r.replayed is True and r.total_payment.value == 102200
    assert cluster.count(POSTS) == 1


@pytest.mark.parametrize("cluster", ["fleet"], indirect=True)
def test_fleet_gateway_given_a_short_attempt_answers_its_own_outcome_unknown(cluster):
    """attempt_timeout_ms 500: the gateway is told 450 ms, gives up on the held POST within it
    and answers UNKNOWN / OUTCOME_UNKNOWN itself before the client's timer fires. That settles
    the key (the fleet's store keeps it), so it is reported as it is, after one attempt."""
    caller = Caller("sync", list(cluster.urls), attempt_timeout_ms=500)
    try:
        e = caller.create("py-fleet-short", deadline_ms=5000).exception(15)
    finally:
        caller.close()
    assert isinstance(e, shipgate.Unknown) and e.reason == "OUTCOME_UNKNOWN", repr(e)
    assert not e.local and e.attempts == 1, repr(e)
    assert cluster.count(POSTS) == 1  # no other attempt was made


# ---------------------------------------------------------------------------- a store each


@pytest.mark.parametrize("cluster", ["nodes"], indirect=True)
def test_nodes_kill_of_the_gateway_holding_the_post_is_outcome_unknown(cluster):
    """Two gateways with their own stores (scope node): kill -9 of the one holding the POST
    ends the call UNKNOWN / OUTCOME_UNKNOWN after one attempt; the other never gets it (the
    call is over, so no POST can follow: no need to wait out the hold)."""
    for u in cluster.urls:
        assert health_of(u).idempotency_scope == "node"
    caller = Caller("async", list(cluster.urls))
    try:
        fut = caller.create("py-nodes-kill", deadline_ms=5000)
        wait_post(cluster)
        assert holder(cluster) == 0
        assert cluster.kill(0) == -9
        e = fut.exception(15)
    finally:
        caller.close()
    assert isinstance(e, shipgate.Unknown) and e.reason == "OUTCOME_UNKNOWN", repr(e)
    assert e.local and not e.retryable and e.attempts == 1, repr(e)
    assert "TRANSPORT_CONNECTION_LOST" in e.message
    assert cluster.count(POSTS) == 1
