"""The shared interop case list (tests/interop/cases.json) against a live gateway and sandbox
started here, with the synchronous and the asynchronous client. Each flavour gets its own
gateway and sandbox (the list creates an order under a fixed idempotency key) and runs every
case in order. See tests/interop/README.md for how a case reads."""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import time
from typing import Any, Dict

import pytest
from google.protobuf import json_format

import shipgate
from shipgate import METHODS

from conftest import REPO, Live

CASES_FILE = os.environ.get("SHIPGATE_INTEROP_CASES", str(REPO / "tests" / "interop" / "cases.json"))
with open(CASES_FILE, encoding="utf-8") as f:
    CASES = json.load(f)["cases"]

_MISSING = object()


def _case_id(i: int, case: Dict[str, Any]) -> str:
    return f"{i:02d}-" + re.sub(r"[^A-Za-z0-9]+", "-", case["name"]).strip("-")[:60]


def lookup(value: Any, path: str) -> Any:
    """The value at a dotted path of proto field names; "x.#" is the length of array x."""
    cur = value
    for tok in path.split("."):
        if tok == "#":
            return len(cur) if isinstance(cur, list) else _MISSING
        if isinstance(cur, list):
            i = int(tok)
            cur = cur[i] if 0 <= i < len(cur) else _MISSING
        elif isinstance(cur, dict):
            cur = cur.get(tok, _MISSING)
        else:
            return _MISSING
        if cur is _MISSING:
            return _MISSING
    return cur


def same(got: Any, want: Any) -> bool:
    """null means absent; numbers compare by value (int64 come as strings); else equality."""
    if want is None:
        return got is _MISSING or got is None
    if got is _MISSING:
        return False
    if isinstance(want, bool) or isinstance(got, bool):
        return isinstance(got, bool) and isinstance(want, bool) and got == want
    if isinstance(want, (int, float)):
        try:
            g = float(got) if isinstance(got, (str, int, float)) else None
        except ValueError:
            return False
        return g is not None and abs(g - want) < 1e-9 * (abs(want) + 1)
    return got == want


def check_case(case: Dict[str, Any], live: Live, resp: Any, err: Any) -> None:
    exp = case["expect"]
    name = case["name"]
    got_code = "OK" if err is None else err.code_name
    assert got_code == exp["code"], f"{name}: got {got_code} {err!r}"
    if "reason" in exp:
        assert err.reason == exp["reason"], name
    if "retryable" in exp:
        assert err.retryable is exp["retryable"], name
    if "upstream_http_status" in exp:
        assert err.upstream_http_status == exp["upstream_http_status"], name
    if "retry_after_ms" in exp:
        assert err.retry_after_ms == exp["retry_after_ms"], name
    if "provider" in exp:
        assert err.provider == exp["provider"], name
    if "attempts" in exp:
        assert err is not None and err.attempts == exp["attempts"], f"{name}: {err!r}"
    if "local" in exp:
        assert err is not None and err.local is exp["local"], f"{name}: {err!r}"
    for f in exp.get("violations", []):
        assert f in [v.field for v in err.violations], f"{name}: no violation of {f}: {err.violations}"
    if "fields" in exp:
        assert resp is not None, name
        got = json_format.MessageToDict(
            resp, preserving_proto_field_name=True, always_print_fields_with_no_presence=True
        )
        bad = []
        for path, want in exp["fields"].items():
            g = lookup(got, path)
            if not same(g, want):
                bad.append(f"{path} is {'absent' if g is _MISSING else json.dumps(g)}, want {json.dumps(want)}")
        assert not bad, f"{name}: " + "; ".join(bad)
    if "sandbox_requests" in exp:
        sr = exp["sandbox_requests"]
        assert live.count(sr["path"]) == sr["count"], name


def _call_args(case: Dict[str, Any]):
    m = METHODS[case["method"]]
    req = json_format.ParseDict(case["request"], m.request_type())
    method = case.get("raw_method", m.full)
    kw = dict(deadline_ms=case.get("deadline_ms", 5000), idempotency_key=case.get("idempotency_key"))
    return method, req, m.response_type, kw


# ---------------------------------------------------------------------------- fixtures


class Runner:
    """Runs cases with one client flavour against one live gateway."""

    def __init__(self, flavour: str):
        self.flavour = flavour
        self.live = Live()
        self.loop = asyncio.new_event_loop() if flavour == "async" else None
        self.client = self.make_client()

    def make_client(self, **kw: Any):
        if self.flavour == "sync":
            return shipgate.Client([self.live.url], **kw)
        return shipgate.AsyncClient([self.live.url], **kw)

    def close_client(self, c: Any) -> None:
        if self.flavour == "sync":
            c.close()
        else:
            self.loop.run_until_complete(c.aclose())

    def call(self, c: Any, method: str, req: Any, rtype: Any, **kw: Any):
        try:
            if self.flavour == "sync":
                return c.call(method, req, rtype, **kw), None
            return self.loop.run_until_complete(c.call(method, req, rtype, **kw)), None
        except shipgate.ShipgateError as e:
            return None, e

    def run_case(self, case: Dict[str, Any]) -> None:
        if case.get("sandbox_reset"):
            self.live.reset()
        method, req, rtype, kw = _call_args(case)
        c = self.client
        own = {k: case[k] for k in ("max_attempts", "attempt_timeout_ms") if k in case}
        if own:
            c = self.make_client(**own)
            deadline = time.monotonic() + 3
            while c.connected() < 1 and time.monotonic() < deadline:
                time.sleep(0.01)
        paused = case.get("gateway_paused", False)
        try:
            if paused:  # it takes requests and answers none
                os.kill(self.live.gateway.p.pid, signal.SIGSTOP)
                wait_stopped(self.live.gateway.p.pid)  # the signal is asynchronous
            try:
                resp, err = self.call(c, method, req, rtype, **kw)
            finally:
                if paused:
                    os.kill(self.live.gateway.p.pid, signal.SIGCONT)
        finally:
            if c is not self.client:
                self.close_client(c)
        check_case(case, self.live, resp, err)

    def close(self) -> None:
        try:
            self.close_client(self.client)
        finally:
            if self.loop is not None:
                self.loop.close()
            codes = self.live.stop()
        assert codes == (0, 0), f"gateway and sandbox exit codes: {codes}"


@pytest.fixture(scope="module", params=["sync", "async"])
def runner(request):
    r = Runner(request.param)
    yield r
    r.close()


# ---------------------------------------------------------------------------- tests


@pytest.mark.parametrize("case", CASES, ids=[_case_id(i, c) for i, c in enumerate(CASES)])
def test_case(runner: Runner, case: Dict[str, Any]) -> None:
    runner.run_case(case)


def test_every_case_ran_with_both_clients():
    assert len(CASES) > 0


def test_concurrent_calls_run_at_once(runner: Runner) -> None:
    """Eight calls to a provider that answers after 500 ms finish together, not in turn."""
    req = shipgate.TrackRequest(provider=shipgate.PROVIDER_BOSCOD, order_id="SLOW-500")
    n = 8
    t0 = time.monotonic()
    if runner.flavour == "async":
        async def many():
            return await asyncio.gather(
                *(runner.client.track(req, deadline_ms=5000) for _ in range(n)), return_exceptions=True
            )
        results = runner.loop.run_until_complete(many())
    else:
        from concurrent.futures import ThreadPoolExecutor

        with ThreadPoolExecutor(n) as ex:
            results = list(ex.map(lambda _: runner.client.track(req, deadline_ms=5000), range(n)))
    elapsed = time.monotonic() - t0
    for r in results:
        assert isinstance(r, shipgate.TrackResponse), r
    assert elapsed < 2.5, f"{n} concurrent 500 ms calls took {elapsed:.2f} s"


def test_typed_methods_live(runner: Runner) -> None:
    c = runner.client

    def run(x):
        return runner.loop.run_until_complete(x) if runner.flavour == "async" else x

    if runner.flavour == "async":
        h = run(c.health())
        o = run(c.get_order({"provider": "PROVIDER_BITESHIP", "order_id": "5dd599ebdefcd4158eb8470b"}))
    else:
        h = c.health()
        o = c.get_order({"provider": "PROVIDER_BITESHIP", "order_id": "5dd599ebdefcd4158eb8470b"})
    assert h.status == shipgate.HealthResponse.SERVING_STATUS_SERVING
    assert o.order.id == "5dd599ebdefcd4158eb8470b"
    with pytest.raises(shipgate.NotFound) as ei:
        if runner.flavour == "async":
            run(c.track({"provider": "PROVIDER_BOSCOD", "orderId": "ERR-404"}, metadata={"caller": "pytest"}))
        else:
            c.track({"provider": "PROVIDER_BOSCOD", "orderId": "ERR-404"}, metadata={"caller": "pytest"})
    e = ei.value
    assert e.local is False and e.attempts == 1 and e.provider == "boscod" and e.request_id


def wait_stopped(pid):
    """Waits (at most 5 s) until pid is stopped: its /proc state reads "T". kill(2) returns
    before the stop takes effect, and a gateway that still runs answers the call."""
    import time

    for _ in range(500):
        try:
            with open(f"/proc/{pid}/stat") as f:
                s = f.read()
            j = s.rfind(")")
            if j >= 0 and s[j + 2 : j + 3] in ("T", "t"):
                return
        except OSError:
            pass
        time.sleep(0.01)
    raise AssertionError(f"gateway {pid} did not stop")
