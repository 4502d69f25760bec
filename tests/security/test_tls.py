"""TLS without a proxy (issue 14): the one-process server serves `https://` and `wss://` itself
from the certificate and key named in FLEETPULSE_API_TLS_CERTFILE / _TLS_KEYFILE; both agent
dialects work over it; the reference agent verifies the certificate by default (a certificate
from a CA it was not given is refused). The CA and the server certificate are made here, with
openssl, for 127.0.0.1."""

from __future__ import annotations

import ssl
import subprocess
from collections.abc import Iterator
from pathlib import Path

import orjson
import pytest
from websockets.asyncio.client import connect

from fleetpulse_agent.runner import connection_config
from fleetpulse_agent.settings import settings as agent_settings
from tests.security.conftest import (
    LEGACY_METRICS,
    Stack,
    agent_socket,
    new_server,
    recv,
    register,
    start_stack,
)

pytestmark = pytest.mark.timeout(180)


def _openssl(*args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True)


def make_certificates(folder: Path) -> tuple[Path, Path, Path]:
    """(CA certificate, server certificate, server key) for 127.0.0.1, in `folder`."""
    _openssl(
        "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=FleetPulse test CA",
        "-keyout", "ca.key", "-out", "ca.pem", "-addext", "basicConstraints=critical,CA:TRUE",
        "-addext", "keyUsage=critical,keyCertSign,cRLSign", cwd=folder,
    )  # fmt: skip
    _openssl(
        "req", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=127.0.0.1", "-keyout", "server.key",
        "-out", "server.csr", cwd=folder,
    )  # fmt: skip
    (folder / "ext.cnf").write_text(
        "subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n"
    )
    _openssl(
        "x509", "-req", "-in", "server.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial",
        "-days", "2", "-out", "server.pem", "-extfile", "ext.cnf", cwd=folder,
    )  # fmt: skip
    return folder / "ca.pem", folder / "server.pem", folder / "server.key"


@pytest.fixture(scope="module")
def ca(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, Path]:
    return make_certificates(tmp_path_factory.mktemp("pki"))


@pytest.fixture(scope="module")
def stack(  # the suite's stack, over TLS
    ca: tuple[Path, Path, Path],
    database_url: str,
    kafka_bootstrap: str,
    topic_prefix: str,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Stack]:
    ca_file, cert, key = ca
    running = start_stack(
        database_url,
        kafka_bootstrap,
        tmp_path_factory.mktemp("stack"),
        {"FLEETPULSE_API_TLS_CERTFILE": str(cert), "FLEETPULSE_API_TLS_KEYFILE": str(key)},
        scheme="https",
        verify=ssl.create_default_context(cafile=str(ca_file)),
    )
    try:
        yield running
    finally:
        running.proc.stop()


async def test_rest_over_https_with_hsts(stack: Stack) -> None:
    assert stack.agent_url.startswith("wss://")
    async with stack.client() as http:
        answer = await http.get("/health")
    assert answer.status_code == 200
    assert answer.headers["strict-transport-security"].startswith("max-age=")


async def test_both_dialects_over_wss(stack: Stack) -> None:
    async with stack.client() as http:
        owner = await register(http)
        server_id, key = await new_server(http, owner)
    async with agent_socket(stack, key, ssl=stack.verify) as ws:  # seed dialect
        await ws.send(
            orjson.dumps(
                {
                    "type": "metrics",
                    "server_id": server_id,
                    "seq": 1,
                    "cpu_percent": 1.0,
                    "memory_percent": 2.0,
                    "timestamp": "2026-01-01T00:00:00Z",
                }
            ).decode()
        )
        assert await recv(ws) == {"type": "ack", "seq": 1}
    async with agent_socket(stack, key, ssl=stack.verify) as ws:  # legacy dialect
        await ws.send(LEGACY_METRICS)
        assert (await recv(ws))["type"] == "metrics_received"


async def test_the_reference_agent_verifies_the_certificate_by_default(
    stack: Stack, ca: tuple[Path, Path, Path], tmp_path: Path
) -> None:
    async with stack.client() as http:
        owner = await register(http)
        _, key = await new_server(http, owner)
    base = {"server_url": stack.url, "api_key": key, "state_dir": tmp_path / "agent"}
    # No CA given: the system store, which does not hold the test CA: refused.
    default = connection_config(agent_settings(**base))
    assert default.ssl_context is not None and default.ssl_context.verify_mode == ssl.CERT_REQUIRED
    with pytest.raises(ssl.SSLCertVerificationError):
        async with connect(default.url, ssl=default.ssl_context, open_timeout=20):
            pass
    # With its CA (`tls_ca_file`), the same agent gets in.
    trusting = connection_config(agent_settings(**base, tls_ca_file=ca[0]))
    async with connect(trusting.url, ssl=trusting.ssl_context, open_timeout=20) as ws:
        await ws.send(orjson.dumps({"type": "auth", "api_key": key}).decode())
        assert (await recv(ws))["type"] == "auth_success"
