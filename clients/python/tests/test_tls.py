"""TLS to the gateway (tls+tcp:// addresses), with the synchronous and the asyncio client.

The options are checked when a client is made (a TLS address needs ca_file; cert_file and
key_file go together; files that do not load are refused). Then against live gateways with a
tls+tcp listener, over certificates made here with the openssl CLI (as tests/test_caller_tls.c
does): ca (the gateway's and the callers' CA), other-ca; srv (127.0.0.1 and localhost, from
ca), client (clientAuth, from ca), stranger (clientAuth, from other-ca).

- server certificate only: a client with ca is answered (Health, Track), also when it names
  the server localhost; one with other-ca, or expecting another name, never connects;
- client certificates required (tls.ca_file): the client certificate from ca is answered;
  none, the stranger's, or the client certificate with another key never connect.

A connection that never comes up fails the call as with no gateway there: UNAVAILABLE /
TRANSPORT_NOT_CONNECTED after connect_timeout_ms (short here).
"""

from __future__ import annotations

import asyncio
import shutil
import subprocess
import time
from pathlib import Path
from typing import Any, Dict

import pytest

import shipgate
from shipgate import Options
from shipgate._gen import policy

from conftest import Live

pytestmark = pytest.mark.timeout(90)

FLAVOURS = ("sync", "async")
TRACK = {"provider": "PROVIDER_BOSCOD", "order_id": "BOS123"}
OK_CONNECT_MS = 3000  # loopback handshakes take milliseconds; generous for a loaded machine
REFUSED_CONNECT_MS = 400  # how long a call waits for a connection that never comes
REFUSED_WITHIN_S = 3.0


# ---------------------------------------------------------------------------- certificates


def _openssl(cwd: Path, *args: str) -> None:
    r = subprocess.run(["openssl", *args], cwd=cwd, capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, f"openssl {' '.join(args)}: {r.stderr.strip()[-500:]}"


@pytest.fixture(scope="module")
def certs(tmp_path_factory) -> Dict[str, Path]:
    if shutil.which("openssl") is None:
        pytest.skip("no openssl CLI to make test certificates with")
    d = tmp_path_factory.mktemp("tls")
    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes"]
    for ca in ("ca", "other-ca"):
        _openssl(d, "req", "-x509", *ec, "-keyout", f"{ca}.key", "-out", f"{ca}.pem",
                 "-days", "2", "-subj", f"/CN={ca}")
    (d / "srv.ext").write_text("subjectAltName=IP:127.0.0.1,DNS:127.0.0.1,DNS:localhost\n")
    (d / "client.ext").write_text("extendedKeyUsage=clientAuth\n")
    # (the DNS:127.0.0.1 entry: mbedTLS 2.28, the gateway's, matches DNS names only)
    for name, cn, ca, ext in (("srv", "127.0.0.1", "ca", "srv.ext"),
                              ("client", "checkout", "ca", "client.ext"),
                              ("stranger", "stranger", "other-ca", "client.ext")):
        _openssl(d, "req", *ec, "-keyout", f"{name}.key", "-out", f"{name}.csr",
                 "-subj", f"/CN={cn}")
        _openssl(d, "x509", "-req", "-in", f"{name}.csr", "-CA", f"{ca}.pem", "-CAkey",
                 f"{ca}.key", "-CAcreateserial", "-out", f"{name}.pem", "-days", "2",
                 "-extfile", ext)
    out = {p.name: p for p in d.iterdir()}
    yield out
    shutil.rmtree(d, ignore_errors=True)


def _tls_gateway(certs: Dict[str, Path], *extra: str) -> Live:
    return Live(listen="tls+tcp://127.0.0.1:0",
                sets=(f"tls.cert_file={certs['srv.pem']}", f"tls.key_file={certs['srv.key']}")
                + extra)


@pytest.fixture(scope="module")
def tls_gw(certs):
    """A gateway with a server certificate only."""
    lv = _tls_gateway(certs)
    assert lv.url.startswith("tls+tcp://127.0.0.1:")
    yield lv
    assert lv.stop() == (0, 0)


@pytest.fixture(scope="module")
def mtls_gw(certs):
    """A gateway requiring client certificates from ca."""
    lv = _tls_gateway(certs, f"tls.ca_file={certs['ca.pem']}", "tls.client_auth=required")
    yield lv
    assert lv.stop() == (0, 0)


# ---------------------------------------------------------------------------- helpers


def run(flavour: str, url: str, track: bool = False, **kw: Any):
    """Health (and Track) through a client of ``flavour`` made with kw: the responses."""
    opts = dict(max_attempts=1, connect_timeout_ms=OK_CONNECT_MS)
    opts.update(kw)
    if flavour == "sync":
        with shipgate.Client(url, **opts) as c:
            out = [c.health(deadline_ms=5000)]
            if track:
                out.append(c.track(TRACK, deadline_ms=5000))
            return out

    async def main():
        async with shipgate.AsyncClient(url, **opts) as c:
            out = [await c.health(deadline_ms=5000)]
            if track:
                out.append(await c.track(TRACK, deadline_ms=5000))
            return out

    return asyncio.run(main())


def served(flavour: str, url: str, track: bool = False, **kw: Any) -> None:
    out = run(flavour, url, track, **kw)
    assert out[0].status == shipgate.HealthResponse.SERVING_STATUS_SERVING
    if track:
        assert out[1].tracking.order_id == "BOS123"


def refused(flavour: str, url: str, **kw: Any) -> None:
    """The call fails quickly, with no connection ever made."""
    start = time.monotonic()
    with pytest.raises(shipgate.Unavailable) as ei:
        run(flavour, url, connect_timeout_ms=REFUSED_CONNECT_MS, **kw)
    took = time.monotonic() - start
    e = ei.value
    assert e.reason == policy.REASON_TRANSPORT_NOT_CONNECTED and e.local, repr(e)
    assert e.attempts == 1
    assert took < REFUSED_WITHIN_S, f"took {took:.2f} s"


# ---------------------------------------------------------------------------- options


@pytest.mark.parametrize("cls", [shipgate.Client, shipgate.AsyncClient], ids=["sync", "async"])
def test_tls_address_needs_ca_file(cls):
    with pytest.raises(ValueError, match="ca_file"):
        cls("tls+tcp://127.0.0.1:7400")
    with pytest.raises(ValueError, match="ca_file"):  # any of the addresses
        cls(["tcp://127.0.0.1:7400", "tls+tcp://127.0.0.1:7401"])
    with pytest.raises(ValueError, match="ca_file"):
        cls("tls+tcp://127.0.0.1:7400", cert_file="c.pem", key_file="c.key")


@pytest.mark.parametrize("cls", [shipgate.Client, shipgate.AsyncClient], ids=["sync", "async"])
def test_cert_and_key_go_together(cls, certs):
    url = "tls+tcp://127.0.0.1:7400"
    with pytest.raises(ValueError, match="cert_file is given without key_file"):
        cls(url, ca_file=certs["ca.pem"], cert_file=certs["client.pem"])
    with pytest.raises(ValueError, match="key_file is given without cert_file"):
        cls(url, ca_file=certs["ca.pem"], key_file=certs["client.key"])


@pytest.mark.parametrize("cls", [shipgate.Client, shipgate.AsyncClient], ids=["sync", "async"])
def test_files_that_do_not_load_are_refused(cls, certs, tmp_path):
    url = "tls+tcp://127.0.0.1:7400"
    ca, cert, key = certs["ca.pem"], certs["client.pem"], certs["client.key"]
    junk = tmp_path / "junk.pem"
    junk.write_text("not a certificate\n")
    with pytest.raises(ValueError, match="cannot read ca_file .*missing.pem"):
        cls(url, ca_file=tmp_path / "missing.pem")
    with pytest.raises(ValueError, match="ca_file .*junk.pem.* does not load"):
        cls(url, ca_file=junk)
    with pytest.raises(ValueError, match="cannot read key_file .*missing.key"):
        cls(url, ca_file=ca, cert_file=cert, key_file=tmp_path / "missing.key")
    with pytest.raises(ValueError, match="do not load as a PEM certificate"):
        cls(url, ca_file=ca, cert_file=junk, key_file=key)
    with pytest.raises(ValueError, match="server_name"):
        cls(url, ca_file=ca, server_name="")


def test_tls_options():
    o = Options.make("tls+tcp://127.0.0.1:7400", ca_file=Path("/x/ca.pem"),
                     cert_file="c.pem", key_file="c.key", server_name="gw.example")
    assert (o.ca_file, o.cert_file, o.key_file, o.server_name) == (
        "/x/ca.pem", "c.pem", "c.key", "gw.example")
    assert o.tls and not Options.make("tcp://127.0.0.1:7400").tls
    assert Options.make("tls+tcp6://[::1]:7400", ca_file="ca.pem").tls
    with pytest.raises(ValueError, match="no host"):
        Options.make("tls+tcp://:7400", ca_file="ca.pem")
    assert Options.make("tls+tcp://:7400", ca_file="ca.pem", server_name="gw").server_name == "gw"
    with pytest.raises(ValueError, match="file path"):
        Options.make("tls+tcp://127.0.0.1:7400", ca_file=7)


def test_ca_file_with_plain_tcp_is_harmless(certs):
    # the TLS options apply to tls+tcp:// addresses only; the files are still checked
    with shipgate.Client("tcp://127.0.0.1:7400", ca_file=certs["ca.pem"]) as c:
        assert c.options.ca_file == str(certs["ca.pem"])
    with pytest.raises(ValueError, match="cannot read ca_file"):
        shipgate.Client("tcp://127.0.0.1:7400", ca_file="/nonexistent/ca.pem")


# ---------------------------------------------------------------------------- server certificate


@pytest.mark.parametrize("flavour", FLAVOURS)
def test_with_the_ca_health_and_track_are_answered(flavour, tls_gw, certs):
    served(flavour, tls_gw.url, track=True, ca_file=certs["ca.pem"])
    # str paths as well as Path; a name the certificate carries other than the URL's host
    served(flavour, tls_gw.url, ca_file=str(certs["ca.pem"]), server_name="localhost")


@pytest.mark.parametrize("flavour", FLAVOURS)
def test_another_ca_never_connects(flavour, tls_gw, certs):
    refused(flavour, tls_gw.url, ca_file=certs["other-ca.pem"])


@pytest.mark.parametrize("flavour", FLAVOURS)
def test_another_name_never_connects(flavour, tls_gw, certs):
    refused(flavour, tls_gw.url, ca_file=certs["ca.pem"], server_name="gateway.invalid")


def test_plain_tcp_to_a_tls_listener_never_connects(tls_gw):
    refused("sync", tls_gw.url.replace("tls+tcp://", "tcp://"))


def test_several_tls_addresses(tls_gw, certs):
    # a TLS socket per address, each with its own config; both connect, calls go round-robin
    with shipgate.Client([tls_gw.url, tls_gw.url], ca_file=certs["ca.pem"],
                         connect_timeout_ms=OK_CONNECT_MS) as c:
        for _ in range(4):
            assert c.health(deadline_ms=5000).status == shipgate.HealthResponse.SERVING_STATUS_SERVING
        end = time.monotonic() + 5
        while c.connected() < 2 and time.monotonic() < end:
            time.sleep(0.01)
        assert c.connected() == 2


# ---------------------------------------------------------------------------- client certificates


@pytest.mark.parametrize("flavour", FLAVOURS)
def test_mtls_the_cas_client_certificate_is_answered(flavour, mtls_gw, certs):
    served(flavour, mtls_gw.url, track=True, ca_file=certs["ca.pem"],
           cert_file=certs["client.pem"], key_file=certs["client.key"])


@pytest.mark.parametrize("flavour", FLAVOURS)
def test_mtls_no_certificate_is_refused(flavour, mtls_gw, certs):
    refused(flavour, mtls_gw.url, ca_file=certs["ca.pem"])


@pytest.mark.parametrize("flavour", FLAVOURS)
def test_mtls_a_strangers_certificate_is_refused(flavour, mtls_gw, certs):
    refused(flavour, mtls_gw.url, ca_file=certs["ca.pem"],
            cert_file=certs["stranger.pem"], key_file=certs["stranger.key"])


def test_mtls_a_certificate_with_another_key_is_refused(mtls_gw, certs):
    refused("sync", mtls_gw.url, ca_file=certs["ca.pem"],
            cert_file=certs["client.pem"], key_file=certs["stranger.key"])
