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

from shipgate import pb, rpc_pb

REPO = Path(__file__).resolve().parents[3]
HEALTH = "/shipgate.v1.Shipgate/Health"

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


def health_reply(scope: str = "node", fleet_id: str = "", store: Optional[str] = None) -> Reply:
    """An OK Health answer saying where the gateway keeps its idempotency keys."""
    h = pb.HealthResponse(
        status=pb.HealthResponse.SERVING_STATUS_SERVING,
        version="fake",
        idempotency_store=store or ("redis" if scope == "fleet" else "sqlite"),
        idempotency_scope=scope,
        fleet_id=fleet_id,
    )
    return Reply(payload=h.SerializeToString())


NODE = health_reply("node")  # a gateway whose keys are its own


def fleet(fleet_id: str) -> Reply:
    """Health of a gateway of fleet ``fleet_id``."""
    return health_reply("fleet", fleet_id)


class FakeGateway:
    """A REP socket answering by a script: ``handler(request, n)`` returns a Reply, DROP, or
    None (no answer at all). ``requests`` records (monotonic time, RpcRequest).

    ``health`` (a Reply, or a handler like ``handler``) answers the Health requests instead of
    ``handler``; they are recorded in ``health_requests`` (time, RpcRequest, pipe id), not in
    ``requests``. ``pipes`` lists the ids of the connections requests came in on."""

    def __init__(self, handler: Handler, url: str = "tcp://127.0.0.1:0", workers: int = 4,
                 health: Any = None):
        self.handler = handler
        self.health = health
        self.requests: List[Tuple[float, Any]] = []
        self.health_requests: List[Tuple[float, Any, int]] = []
        self.request_pipes: List[int] = []
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
            try:
                pipe_id = msg.pipe.id
            except Exception:
                pipe_id = -1
            handler = self.handler
            with self._lock:
                if self.health is not None and req.method == HEALTH:
                    n = len(self.health_requests)
                    self.health_requests.append((time.monotonic(), req, pipe_id))
                    h = self.health
                    handler = h if callable(h) else (lambda req, n: h)
                else:
                    n = len(self.requests)
                    self.requests.append((time.monotonic(), req))
                    self.request_pipes.append(pipe_id)
            try:
                act = handler(req, n)
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

    @property
    def probes(self) -> int:
        """Health requests answered by ``health``."""
        with self._lock:
            return len(self.health_requests)

    def methods(self) -> List[str]:
        """The short method names of ``requests``, in order."""
        with self._lock:
            return [r.method.rsplit("/", 1)[-1] for _, r in self.requests]

    def drop_connections(self) -> int:
        """Closes every connection (the clients see them drop and redial)."""
        n = 0
        for p in self.sock.pipes:
            try:
                p.close()
                n += 1
            except pynng.NNGException:
                pass
        return n

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


def free_tcp_port() -> int:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


class SandboxHttp:
    """The sandbox's own endpoints (/__sandbox/...), for a class with sandbox_url."""

    sandbox_url: str
    _http: Any

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

    def wait_count(self, prefix: str, n: int, timeout: float = 5.0) -> int:
        """Polls the sandbox's record until it holds n requests under prefix (or timeout)."""
        end = time.monotonic() + timeout
        got = self.count(prefix)
        while got < n and time.monotonic() < end:
            time.sleep(0.01)
            got = self.count(prefix)
        return got


class Live(SandboxHttp):
    """A sandbox and a gateway on loopback, tcp port 0 (``listen``: another URL, e.g.
    tls+tcp://127.0.0.1:0; ``sets``: more --set KEY=VALUE options)."""

    def __init__(self, listen: str = "tcp://127.0.0.1:0", sets: Tuple[str, ...] = ()) -> None:
        gw_bin = _binary("SHIPGATED", "shipgated")
        sb_bin = _binary("SHIPGATE_SANDBOX", "shipgate-sandbox")
        self.sandbox = Proc([sb_bin, "--listen", "127.0.0.1:0"], "listening on ")
        self.sandbox_url = self.sandbox.line.split()[0]
        # a fresh state directory (the idempotency store): no keys from an earlier run
        self.state_dir = tempfile.mkdtemp(prefix="shipgate-py-")
        argv = [gw_bin, "--quiet", "--listen", listen,
                "--set", f"state_dir={self.state_dir}"]
        for p in PROVIDERS:
            argv += ["--set", f"{p}.base_url={self.sandbox_url}/{p}"]
        for kv in sets:
            argv += ["--set", kv]
        try:
            self.gateway = Proc(argv, "shipgated ready on ")
        except BaseException:
            self.sandbox.stop()
            raise
        self.url = self.gateway.line.split()[0]
        self._http = urllib.request.build_opener(urllib.request.ProxyHandler({}))

    def stop(self) -> Tuple[Optional[int], Optional[int]]:
        rc = self.gateway.stop(), self.sandbox.stop()
        shutil.rmtree(self.state_dir, ignore_errors=True)
        return rc


class Redis:
    """A redis-server on a free loopback port, nothing saved, ready once it answers PING."""

    def __init__(self, timeout: float = 10.0) -> None:
        binary = os.environ.get("REDIS_SERVER") or shutil.which("redis-server") or "/usr/bin/redis-server"
        if not os.access(binary, os.X_OK):
            pytest.skip("no redis-server (Debian package redis-server; or set REDIS_SERVER)")
        # redis-server --port 0 does not listen on tcp at all: a port that was free a moment ago
        self.port = free_tcp_port()
        self.url = f"redis://127.0.0.1:{self.port}"
        self.p = subprocess.Popen(
            [binary, "--bind", "127.0.0.1", "--port", str(self.port), "--save", "",
             "--appendonly", "no"],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            preexec_fn=_die_with_parent,
        )
        end = time.monotonic() + timeout
        while not self.ping():
            if self.p.poll() is not None or time.monotonic() > end:
                self.stop()
                raise RuntimeError(f"redis-server on port {self.port} did not answer PING")
            time.sleep(0.02)

    def ping(self) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=0.5) as c:
                c.sendall(b"PING\r\n")
                return c.recv(16).startswith(b"+PONG")
        except OSError:
            return False

    def stop(self) -> Optional[int]:
        if self.p.poll() is None:
            self.p.terminate()
            try:
                self.p.wait(10)
            except subprocess.TimeoutExpired:
                self.p.kill()
                self.p.wait()
        return self.p.returncode


class Cluster(SandboxHttp):
    """One sandbox and n gateways on it (loopback, tcp port 0), each with a state directory of
    its own (its own SQLite store by default) and the --set options in ``sets``."""

    def __init__(self, n: int = 2, sets: Tuple[str, ...] = ()) -> None:
        self.gw_bin = _binary("SHIPGATED", "shipgated")
        sb_bin = _binary("SHIPGATE_SANDBOX", "shipgate-sandbox")
        self.sets = tuple(sets)
        self._http = urllib.request.build_opener(urllib.request.ProxyHandler({}))
        self.sandbox = Proc([sb_bin, "--listen", "127.0.0.1:0"], "listening on ")
        self.sandbox_url = self.sandbox.line.split()[0]
        self.state_dirs: List[str] = []
        self.gateways: List[Proc] = []
        self.urls: List[str] = []
        self.killed: set = set()  # gateways killed on purpose (and not restarted)
        try:
            for _ in range(n):
                self.state_dirs.append(tempfile.mkdtemp(prefix="shipgate-py-"))
                self.gateways.append(self._start(len(self.state_dirs) - 1))
                self.urls.append(self.gateways[-1].line.split()[0])
        except BaseException:
            self.stop()
            raise

    def _start(self, i: int) -> Proc:
        argv = [self.gw_bin, "--quiet", "--listen", "tcp://127.0.0.1:0",
                "--set", f"state_dir={self.state_dirs[i]}"]
        for p in PROVIDERS:
            argv += ["--set", f"{p}.base_url={self.sandbox_url}/{p}"]
        for kv in self.sets:
            argv += ["--set", kv]
        return Proc(argv, "shipgated ready on ")

    def kill(self, i: int) -> int:
        """kill -9 of gateway i; its exit status (-9)."""
        self.killed.add(i)
        self.gateways[i].p.kill()
        return self.gateways[i].p.wait(10)

    def revive(self) -> None:
        """Restarts every gateway that is not running (on a new port: see urls)."""
        for i, g in enumerate(self.gateways):
            if g.p.poll() is not None:
                self.gateways[i] = self._start(i)
                self.urls[i] = self.gateways[i].line.split()[0]
                self.killed.discard(i)

    def stop(self) -> List[Optional[int]]:
        """Stops everything; the exit codes of the gateways not killed on purpose, then the
        sandbox's."""
        rcs = [g.stop() for i, g in enumerate(self.gateways) if i not in self.killed]
        for i in self.killed:
            self.gateways[i].stop()
        rcs.append(self.sandbox.stop())
        for d in self.state_dirs:
            shutil.rmtree(d, ignore_errors=True)
        return rcs


class TcpProxy:
    """127.0.0.1:<port> forwarded to 127.0.0.1:<target_port>, a thread per direction and
    connection. hold(): the target's bytes are no longer passed back (a gateway cut off from
    its client, still working); cut(): every connection is closed."""

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self.holding = threading.Event()
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._socks: List[socket.socket] = []
        self._lis = socket.socket()
        self._lis.bind(("127.0.0.1", 0))
        self._lis.listen(16)
        self._lis.settimeout(0.05)
        self.port = self._lis.getsockname()[1]
        self.url = f"tcp://127.0.0.1:{self.port}"
        self._threads = [threading.Thread(target=self._accept, daemon=True)]
        self._threads[0].start()

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                c, _ = self._lis.accept()
            except socket.timeout:
                continue
            except OSError:
                return
            try:
                u = socket.create_connection(("127.0.0.1", self.target_port), timeout=2)
            except OSError:
                c.close()
                continue
            c.settimeout(None)
            u.settimeout(None)
            with self._lock:
                self._socks += [c, u]
            for src, dst, back in ((c, u, False), (u, c, True)):
                t = threading.Thread(target=self._pump, args=(src, dst, back), daemon=True)
                t.start()
                self._threads.append(t)

    def _pump(self, src: socket.socket, dst: socket.socket, back: bool) -> None:
        try:
            while True:
                data = src.recv(65536)
                if not data:
                    break
                if back and self.holding.is_set():
                    continue  # swallowed: the client never sees the answer
                dst.sendall(data)
        except OSError:
            pass
        for x in (src, dst):
            try:
                x.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def hold(self) -> None:
        self.holding.set()

    def cut(self) -> None:
        with self._lock:
            socks, self._socks = self._socks, []
        for x in socks:
            try:
                x.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            x.close()

    def close(self) -> None:
        self._stop.set()
        self._lis.close()
        self.cut()
        for t in self._threads:
            t.join(2)
