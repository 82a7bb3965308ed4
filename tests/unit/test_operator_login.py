"""kopf logs in with the client's own configuration, in a pod too: the in-cluster
address comes from KUBERNETES_SERVICE_HOST/PORT (as client-go does), never from the
``kubernetes.default.svc`` name, which needs cluster DNS (a real node showed an
operator without DNS reconciling nothing and saying nothing)."""

from __future__ import annotations

import datetime

import kubernetes
from kubernetes.config.incluster_config import InClusterConfigLoader

from lambdakube_operator.handlers import connection_info


def _in_cluster(tmp_path, token: str) -> tuple[kubernetes.client.Configuration, InClusterConfigLoader]:
    (tmp_path / "token").write_text(token)
    (tmp_path / "ca.crt").write_text("-----BEGIN CERTIFICATE-----\nx\n-----END CERTIFICATE-----\n")
    cfg = kubernetes.client.Configuration()
    loader = InClusterConfigLoader(
        token_filename=str(tmp_path / "token"),
        cert_filename=str(tmp_path / "ca.crt"),
        environ={"KUBERNETES_SERVICE_HOST": "10.96.0.1", "KUBERNETES_SERVICE_PORT": "443"},
    )
    loader.load_and_set(cfg)
    return cfg, loader


def test_in_cluster_login_uses_the_service_address_not_dns(tmp_path):
    info = connection_info(_in_cluster(tmp_path, "tok-1")[0], "lambdakube-system")
    assert info.server == "https://10.96.0.1:443"
    assert info.token == "tok-1" and info.scheme.lower() == "bearer"
    assert info.ca_path == str(tmp_path / "ca.crt")
    assert info.default_namespace == "lambdakube-system"


def test_a_relogin_reads_a_rotated_token(tmp_path):
    cfg, loader = _in_cluster(tmp_path, "tok-1")
    (tmp_path / "token").write_text("tok-2")
    assert connection_info(cfg, None).token == "tok-1"  # read less than a minute ago
    # The client re-reads the token file once its copy is a minute old.
    loader.token_expires_at = datetime.datetime.now() - datetime.timedelta(seconds=1)
    assert connection_info(cfg, None).token == "tok-2"
