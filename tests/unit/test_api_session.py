"""``informer.ApiSession``: the HTTP session every informer's list + watch runs on
(``PodCache`` and ``KubernetesSource`` included). Its TLS context follows the kubernetes-client configuration, its
timeouts let a watch stay silent for a whole watch period, and one session is shared
until it is closed. (Fresh starts no longer watch their own pod: ``test_claims.py``
holds the fresh-start rules, on what the cache shows.)"""

from __future__ import annotations

import shutil
import ssl
import subprocess
from types import SimpleNamespace

import pytest

from lambdakube_router.informer import WATCH_SECONDS, ApiSession


def config(
    host: str, *, verify_ssl: bool = True, cert_file: str | None = None, key_file: str | None = None
) -> SimpleNamespace:
    """The fields of a kubernetes-client ``Configuration`` the session reads."""
    return SimpleNamespace(host=host, ssl_ca_cert=None, verify_ssl=verify_ssl, cert_file=cert_file, key_file=key_file)


TLS = [
    # (case, configuration, expected: False for no TLS, else (verify_mode, check_hostname))
    ("plain http: no TLS", config("http://127.0.0.1:8080"), False),
    ("https verifies the server", config("https://10.96.0.1"), (ssl.CERT_REQUIRED, True)),
    (
        "https with verify_ssl off (a test cluster)",
        config("https://10.96.0.1", verify_ssl=False),
        (ssl.CERT_NONE, False),
    ),
]


@pytest.mark.parametrize("case,cfg,expected", TLS, ids=[c[0] for c in TLS])
def test_tls_follows_the_configuration(case, cfg, expected):
    ctx = ApiSession(cfg)._ssl()
    if expected is False:
        assert ctx is False
    else:
        assert isinstance(ctx, ssl.SSLContext)
        assert (ctx.verify_mode, ctx.check_hostname) == expected


@pytest.mark.skipif(shutil.which("openssl") is None, reason="needs the openssl command")
def test_a_client_certificate_is_loaded(tmp_path):
    cert, key = tmp_path / "c.crt", tmp_path / "c.key"
    subprocess.run(
        [
            "openssl",
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-subj",
            "/CN=router",
            "-days",
            "1",
            "-keyout",
            str(key),
            "-out",
            str(cert),
        ],
        check=True,
        capture_output=True,
    )
    ctx = ApiSession(config("https://10.96.0.1", cert_file=str(cert), key_file=str(key)))._ssl()
    assert isinstance(ctx, ssl.SSLContext)
    with pytest.raises(FileNotFoundError):  # and a missing one is an error, not ignored
        ApiSession(config("https://10.96.0.1", cert_file=str(tmp_path / "none.crt")))._ssl()


async def test_one_session_until_closed_with_watch_timeouts():
    watcher = ApiSession(config("http://127.0.0.1:8080"))
    session = watcher()
    try:
        assert watcher() is session
        assert session.timeout.total is None  # a watch lasts as long as the server lets it
        assert session.timeout.sock_read is not None and session.timeout.sock_read > WATCH_SECONDS
    finally:
        await watcher.close()
    again = watcher()
    try:
        assert again is not session and not again.closed
    finally:
        await watcher.close()
