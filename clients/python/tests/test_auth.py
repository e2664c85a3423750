"""The client over TLS with a bearer token: a weftd of the test's own with
--tls_cert/--tls_key/--tls_client_ca (mutual TLS) and --auth_tokens, its
certificates made with openssl when the test runs. Skipped against a weftd
given by WEFT_ADDR (the compose integration), whose flags the test does not
choose."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
from collections.abc import Iterator

import pytest

from harness import Process, wait_until_serving
from weft_client import Client, WeftError, call


def _sh(cmd: str, cwd: str) -> None:
    subprocess.run(cmd, shell=True, cwd=cwd, check=True, capture_output=True, timeout=60)


def _cert(d: str, name: str, subject: str) -> None:
    _sh("openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes "
        "-keyout {n}.key -out {n}.csr -subj '{s}' && "
        "printf 'subjectAltName=DNS:localhost,IP:127.0.0.1\\n' > {n}.ext && "
        "openssl x509 -req -in {n}.csr -CA ca.pem -CAkey ca.key -CAcreateserial "
        "-out {n}.pem -days 2 -extfile {n}.ext".format(n=name, s=subject), d)


@pytest.fixture(scope="module")
def secured(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, str]]:
    """(weftd's address, the folder of certificates)."""
    if not os.environ.get("WEFT_WEFTD"):
        pytest.skip("needs WEFT_WEFTD: a weftd this test starts with TLS and tokens")
    d = str(tmp_path_factory.mktemp("tls"))
    _sh("openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes "
        "-keyout ca.key -out ca.pem -days 2 -subj '/CN=test CA'", d)
    _cert(d, "server", "/CN=weftd")
    _cert(d, "client", "/CN=python-client")
    with open(os.path.join(d, "tokens.json"), "w") as f:
        json.dump({"principals": [
            {"name": "alice", "role": "user",
             "tokenSha256": hashlib.sha256(b"alice-secret").hexdigest()},
            {"name": "ops", "role": "admin", "certificateSubject": "CN=python-client"}]}, f)
    weftd = Process("weftd", [os.environ["WEFT_WEFTD"], "--listen=127.0.0.1:0",
                              "--tls_cert=%s/server.pem" % d, "--tls_key=%s/server.key" % d,
                              "--tls_client_ca=%s/ca.pem" % d,
                              "--auth_tokens=%s/tokens.json" % d], r"listening on (\S+)")
    try:
        yield weftd.address, d
    finally:
        weftd.stop()


def _client(secured: tuple[str, str], **kwargs: str) -> Client:
    address, d = secured
    return Client(address, timeout=60, tls_ca=d + "/ca.pem", tls_cert=d + "/client.pem",
                  tls_key=d + "/client.key", **kwargs)


def test_a_token_names_the_caller_and_its_tasks_are_its_own(secured):
    with _client(secured, token="alice-secret") as alice, _client(secured) as ops:
        wait_until_serving(alice)
        task = alice.create_task(call("value", value=1))
        assert task.creator == "alice"
        # The certificate's subject names the admin, who reaches every task.
        assert ops.get_task(task.name).creator == "alice"
        with pytest.raises(WeftError) as e:
            alice.create_lazy_value("stats", call("value", value=1))
        assert e.value.reason == "ADMIN_ONLY"
        ops.create_lazy_value("stats", call("value", value=7))
        assert alice.resolve_lazy_value("stats").value == 7
        ops.delete_lazy_value("stats")

def test_a_wrong_token_is_unauthenticated(secured):
    with _client(secured, token="guess") as c:
        with pytest.raises(WeftError) as e:
            c.list_handlers()
    assert e.value.reason == "CREDENTIALS_INVALID"


def test_bad_files_are_named(secured):
    _, d = secured
    with pytest.raises(ValueError, match="tls_ca /nonexistent"):
        Client("127.0.0.1:1", tls_ca="/nonexistent")
    with pytest.raises(ValueError, match="go together"):
        Client("127.0.0.1:1", tls_ca=d + "/ca.pem", tls_cert=d + "/client.pem")
