"""Operator configuration and the kopf settings derived from it."""

from __future__ import annotations

import logging

import kopf
import pytest

from lambdakube.models import DEFAULT_RUNTIME_IMAGE
from lambdakube_operator.settings import OperatorConfig, parse_args


def test_kopf_settings_use_our_prefix_finalizer_and_watch_timeouts():
    s = OperatorConfig(namespaces=("a",)).kopf_settings()
    assert s.persistence.finalizer == "lambdakube.dev/cleanup"
    assert isinstance(s.persistence.progress_storage, kopf.AnnotationsProgressStorage)
    assert s.persistence.progress_storage.prefix == "lambdakube.dev"
    assert isinstance(s.persistence.diffbase_storage, kopf.AnnotationsDiffBaseStorage)
    assert s.persistence.diffbase_storage.prefix == "lambdakube.dev"
    assert (s.watching.server_timeout, s.watching.client_timeout) == (60, 70)
    assert s.posting.level == logging.WARNING
    assert s.posting.reporting_component == "lambdakube-operator"


def test_command_line():
    c = parse_args(
        [
            "--namespace",
            "a",
            "-n",
            "b",
            "--metrics-port",
            "9999",
            "--liveness-port",
            "0",
            "--start-deadline",
            "60",
            "--drain-grace",
            "5",
            "--kubeconfig",
            "/k",
        ]
    )
    assert c.namespaces == ("a", "b") and not c.all_namespaces
    assert c.metrics_port == 9999 and c.liveness_port is None
    assert (c.timing.start_deadline, c.timing.drain_grace) == (60, 5)
    assert c.kubeconfig == "/k"
    assert c.runtime_image == DEFAULT_RUNTIME_IMAGE
    assert parse_args(["--all-namespaces", "--runtime-image", "me/rt:1"]).runtime_image == "me/rt:1"


def test_namespace_and_all_namespaces_are_exclusive():
    with pytest.raises(SystemExit):
        parse_args(["-n", "a", "-A"])


def test_main_refuses_to_run_without_a_scope(capsys, monkeypatch):
    from lambdakube_operator.__main__ import main

    monkeypatch.delenv("KUBECONFIG", raising=False)
    assert main(["--metrics-port", "0"]) == 2
    assert "--namespace" in capsys.readouterr().err


def test_generic_pool_size_flag():
    assert parse_args(["-n", "a"]).generic_pool_size == 0  # off unless asked for
    assert parse_args(["-n", "a", "--generic-pool-size", "3"]).generic_pool_size == 3
    with pytest.raises(SystemExit):
        parse_args(["-n", "a", "--generic-pool-size", "-1"])
