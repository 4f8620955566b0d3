"""Shared test helpers: a scripted in-process gateway (pynng REP) and the live gateway +
sandbox processes."""

from __future__ import annotations

import ctypes
import json
import os
import select
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, List, Optional, Tuple

import pynng
import pytest

from shipgate import rpc_pb

REPO = Path(__file__).resolve().parents[3]

# ---------------------------------------------------------------------------- fake gateway

DROP = object()  # close the connection the request came in on (the client sees it drop)


@dataclass
class Reply:
    """What the fake gateway answers: a status (code 0 = OK with payload) or raw bytes."""

    code: int = 0
    message: str = ""
    payload: bytes = b""
    delay_s: float = 0.0
    raw: Optional[bytes] = None
    request_id: Optional[str] = None  # None: echo the request's
    detail: dict = field(default_factory=dict)  # ErrorDetail fields
    no_status: bool = False

    def encode(self, req: Any) -> bytes:
        if self.raw is not None:
            return self.raw
        rep = rpc_pb.RpcReply(request_id=req.request_id if self.request_id is None else self.request_id)
        if not self.no_status:
            rep.status.code = self.code
            rep.status.message = self.message
            if self.code != 0 or self.detail:
                d = dict(self.detail)
                viol = d.pop("field_violations", [])
                for k, v in d.items():
                    setattr(rep.status.detail, k, v)
                for f, desc in viol:
                    rep.status.detail.field_violations.add(field=f, description=desc)
        if self.code == 0:
            rep.payload = self.payload
        return rep.SerializeToString()


Handler = Callable[[Any, int], Any]  # (RpcRequest, index of the request) -> Reply|DROP|None


class FakeGateway:
    """A REP socket answering by a script: ``handler(request, n)`` returns a Reply, DROP, or
    None (no answer at all). ``requests`` records (monotonic time, RpcRequest)."""

    def __init__(self, handler: Handler, url: str = "tcp://127.0.0.1:0", workers: int = 4):
        self.handler = handler
        self.requests: List[Tuple[float, Any]] = []
        self._lock = threading.Lock()
        self.sock = pynng.Rep0()
        lis = self.sock.listen(url)
        if url.startswith("tcp://"):
            # pynng gives the port in network byte order
            self.url = f"tcp://127.0.0.1:{socket.ntohs(lis.local_address.port)}"
        else:
            self.url = url
        self._threads = []
        for _ in range(workers):
            ctx = self.sock.new_context()
            t = threading.Thread(target=self._serve, args=(ctx,), daemon=True)
            t.start()
            self._threads.append(t)

    def _serve(self, ctx: Any) -> None:
        while True:
            try:
                msg = ctx.recv_msg()
            except pynng.NNGException:  # closed
                try:
                    ctx.close()
                except pynng.NNGException:
                    pass
                return
            req = rpc_pb.RpcRequest.FromString(msg.bytes)
            with self._lock:
                n = len(self.requests)
                self.requests.append((time.monotonic(), req))
            try:
                act = self.handler(req, n)
            except Exception:  # a broken script: answer nothing
                act = None
            if act is None:
                continue
            if act is DROP:
                try:
                    msg.pipe.close()
                except Exception:
                    pass
                continue
            if act.delay_s:
                time.sleep(act.delay_s)
            try:
                ctx.send(act.encode(req))
            except pynng.NNGException:
                pass

    @property
    def count(self) -> int:
        with self._lock:
            return len(self.requests)

    def close(self) -> None:
        self.sock.close()
        for t in self._threads:
            t.join(2)

    def __enter__(self) -> "FakeGateway":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


@pytest.fixture
def fake():
    """fake(handler, **kw) -> a started FakeGateway, closed after the test."""
    made: List[FakeGateway] = []

    def start(handler: Handler, **kw: Any) -> FakeGateway:
        g = FakeGateway(handler, **kw)
        made.append(g)
        return g

    yield start
    for g in made:
        g.close()


def free_tcp_url() -> str:
    """A loopback URL nothing listens on (the port was free a moment ago)."""
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return f"tcp://127.0.0.1:{port}"


# ---------------------------------------------------------------------------- live processes

try:
    _prctl = ctypes.CDLL(None, use_errno=True).prctl
except (OSError, AttributeError):  # pragma: no cover - not Linux
    _prctl = None


def _die_with_parent() -> None:  # runs in the child between fork and exec
    if _prctl is not None:
        _prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG: no orphan if pytest is killed


class Proc:
    """A child process started and read until its readiness line (10 s at most)."""

    def __init__(self, argv: List[str], ready_prefix: str, timeout: float = 10.0):
        self.argv = argv
        self.p = subprocess.Popen(
            argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, preexec_fn=_die_with_parent
        )
        fd = self.p.stdout.fileno()
        buf = b""
        end = time.monotonic() + timeout
        self.line = None
        while self.line is None:
            left = end - time.monotonic()
            if left <= 0 or not select.select([fd], [], [], left)[0]:
                break
            chunk = os.read(fd, 4096)
            if not chunk:
                break
            buf += chunk
            while b"\n" in buf:
                ln, buf = buf.split(b"\n", 1)
                s = ln.decode(errors="replace").strip()
                if s.startswith(ready_prefix):
                    self.line = s[len(ready_prefix):]
                    break
        if self.line is None:
            self.stop(signal.SIGKILL)
            raise RuntimeError(f"{argv[0]} did not become ready (got {buf[:200]!r})")
        # keep draining stdout so that the child never blocks on a full pipe
        threading.Thread(target=self._drain, daemon=True).start()

    def _drain(self) -> None:
        try:
            while self.p.stdout.read(4096):
                pass
        except (OSError, ValueError):
            pass

    def stop(self, sig: int = signal.SIGTERM) -> Optional[int]:
        if self.p.poll() is None:
            self.p.send_signal(sig)
            try:
                self.p.wait(10)
            except subprocess.TimeoutExpired:
                self.p.kill()
                self.p.wait()
                return None
        return self.p.returncode


def _binary(env: str, name: str) -> str:
    path = os.environ.get(env)
    if path:
        if not os.access(path, os.X_OK):
            pytest.fail(f"{env}={path} is not an executable")
        return path
    build = os.environ.get("SHIPGATE_BUILD_DIR", str(REPO / "build"))
    path = os.path.join(build, "bin", name)
    if not os.access(path, os.X_OK):
        pytest.skip(f"no {name}: set {env} (or build the repository)")
    return path


PROVIDERS = ("boscod", "bosonline", "biteship", "fuuffy")


class Live:
    """A sandbox and a gateway on loopback, tcp port 0."""

    def __init__(self) -> None:
        gw_bin = _binary("SHIPGATED", "shipgated")
        sb_bin = _binary("SHIPGATE_SANDBOX", "shipgate-sandbox")
        self.sandbox = Proc([sb_bin, "--listen", "127.0.0.1:0"], "listening on ")
        self.sandbox_url = self.sandbox.line.split()[0]
        # a fresh state directory (the idempotency store): no keys from an earlier run
        self.state_dir = tempfile.mkdtemp(prefix="shipgate-py-")
        argv = [gw_bin, "--quiet", "--listen", "tcp://127.0.0.1:0",
                "--set", f"state_dir={self.state_dir}"]
        for p in PROVIDERS:
            argv += ["--set", f"{p}.base_url={self.sandbox_url}/{p}"]
        try:
            self.gateway = Proc(argv, "shipgated ready on ")
        except BaseException:
            self.sandbox.stop()
            raise
        self.url = self.gateway.line.split()[0]
        self._http = urllib.request.build_opener(urllib.request.ProxyHandler({}))

    def http(self, method: str, path: str) -> Tuple[int, bytes]:
        req = urllib.request.Request(self.sandbox_url + path, method=method,
                                     data=b"" if method == "POST" else None)
        with self._http.open(req, timeout=10) as r:
            return r.status, r.read()

    def reset(self) -> None:
        status, _ = self.http("POST", "/__sandbox/reset")
        assert status == 200

    def count(self, prefix: str) -> int:
        status, body = self.http("GET", "/__sandbox/requests")
        assert status == 200
        return sum(1 for e in json.loads(body) if str(e.get("path", "")).startswith(prefix))

    def stop(self) -> Tuple[Optional[int], Optional[int]]:
        rc = self.gateway.stop(), self.sandbox.stop()
        shutil.rmtree(self.state_dir, ignore_errors=True)
        return rc
