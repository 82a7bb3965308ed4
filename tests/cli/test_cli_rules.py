"""The CLI's pure parts as tables of named cases: exit codes, where the router is, what a
follower prints, bench's numbers, kubectl's AGE, and the router's recent-window summary."""

from __future__ import annotations

import pytest

from lambdakube_router import recent
from lambdakube_router.ctl import config, exits, render, stats, tail
from lambdakube_router.limits import NamespaceLimits
from lambdakube.models import ConcurrencyQuotaSpec, FunctionSpec

EXIT_CASES = {
    "result": (200, {}, 0),
    "function error": (200, {"X-Amz-Function-Error": "Unhandled"}, 1),
    "function error, any case": (200, {"x-amz-function-error": "Unhandled"}, 1),
    "event accepted": (202, {}, 0),
    "dry run": (204, {}, 0),
    "throttled": (429, {}, 3),
    "not found": (404, {}, 1),
    "refused": (401, {}, 1),
    "environment failure": (502, {}, 1),
    "no answer": (None, {}, 1),
}


@pytest.mark.parametrize("status,headers,want", EXIT_CASES.values(), ids=EXIT_CASES)
def test_exit_code_of_an_answer(status, headers, want):
    assert exits.of_answer(status, headers) == want


WORST_CASES = {
    "all fine": ([0, 0], 0),
    "a throttle": ([0, 3, 0], 3),
    "an error wins over a throttle": ([3, 1, 0], 1),
    "nothing": ([], 0),
}


@pytest.mark.parametrize("codes,want", WORST_CASES.values(), ids=WORST_CASES)
def test_worst_of_many(codes, want):
    assert exits.worst(codes) == want


RESOLVE_CASES = {
    "defaults: make dev": ({}, {}, ("http://127.0.0.1:9000", None, "default")),
    "environment": (
        {},
        {"LAMBDAKUBE_ROUTER_URL": "http://r:9000/", "LAMBDAKUBE_TOKEN": "t", "LAMBDAKUBE_NAMESPACE": "team-a"},
        ("http://r:9000", "t", "team-a"),
    ),
    "flags win": (
        {"url": "http://f:1", "token": "ft", "namespace": "ns"},
        {"LAMBDAKUBE_ROUTER_URL": "http://r:9000", "LAMBDAKUBE_TOKEN": "t"},
        ("http://f:1", "ft", "ns"),
    ),
    "empty is unset": (
        {},
        {"LAMBDAKUBE_TOKEN": "", "LAMBDAKUBE_ROUTER_URL": ""},
        ("http://127.0.0.1:9000", None, "default"),
    ),
}


@pytest.mark.parametrize("flags,environ,want", RESOLVE_CASES.values(), ids=RESOLVE_CASES)
def test_where_the_router_is(flags, environ, want):
    kw = {"url": None, "token": None, "namespace": None, **flags}
    t = config.resolve(**kw, environ=environ)
    assert (t.url, t.token, t.namespace) == want


LK = "https://lk.example:8443"
KUBE = config.FromKubeconfig(router=LK, namespace="team-k", token=lambda: "sa-token")
KUBE_NO_NS = config.FromKubeconfig(router=LK, namespace=None, token=lambda: None)
#: (flags, environ, the kubeconfig's answer) -> (url, token, namespace, was the kubeconfig read)
KUBE_RESOLVE_CASES = {
    "no kubeconfig router: make dev": ({}, {}, None, ("http://127.0.0.1:9000", None, "default", True)),
    "the kubeconfig's router, namespace and token": ({}, {}, KUBE, (LK, "sa-token", "team-k", True)),
    "its context without a namespace: default": ({}, {}, KUBE_NO_NS, (LK, None, "default", True)),
    "a flag's namespace and token win over the context's": (
        {"namespace": "ns", "token": "ft"}, {}, KUBE, (LK, "ft", "ns", True),
    ),
    "the variable's namespace wins": (
        {}, {"LAMBDAKUBE_NAMESPACE": "env-ns"}, KUBE, (LK, "sa-token", "env-ns", True),
    ),
    "--router-url: the kubeconfig is not read": (
        {"url": "http://f:1"}, {}, KUBE, ("http://f:1", None, "default", False),
    ),
    "$LAMBDAKUBE_ROUTER_URL: the kubeconfig is not read": (
        {}, {"LAMBDAKUBE_ROUTER_URL": "http://r:2"}, KUBE, ("http://r:2", None, "default", False),
    ),
}  # fmt: skip


@pytest.mark.parametrize("flags,environ,kube,want", KUBE_RESOLVE_CASES.values(), ids=KUBE_RESOLVE_CASES)
def test_the_kubeconfig_comes_after_flags_and_variables(flags, environ, kube, want):
    read = []

    def kubeconfig():
        read.append(1)
        return kube

    kw = {"url": None, "token": None, "namespace": None, **flags}
    t = config.resolve(**kw, environ=environ, kubeconfig=kubeconfig)
    assert (t.url, t.token, t.namespace, bool(read)) == want


def test_a_token_flag_asks_the_kubeconfig_for_none():
    """The TokenRequest is made only when no token is given otherwise."""

    def no_token_wanted():
        raise AssertionError("asked for a token")

    kube = config.FromKubeconfig(router="https://lk", namespace=None, token=no_token_wanted)
    t = config.resolve(url=None, token="mine", namespace=None, environ={}, kubeconfig=lambda: kube)
    assert (t.url, t.token) == ("https://lk", "mine")


def _view(context: dict, name: str = "prod", current: str | None = "prod") -> dict:
    return {"current-context": current, "contexts": [{"name": name, "context": {"cluster": "c", **context}}]}


def _ext(value) -> dict:
    other = {"name": "other.tool", "extension": {"x": 1}}
    return {"extensions": [other, {"name": "lambdakube.dev", "extension": value}]}


#: a minified ``kubectl config view -o json`` -> (router, namespace, serviceAccount) or the error's text
VIEW_CASES = {
    "no current context": (_view({}, current=None), None),
    "a context without the extension": (_view({"namespace": "a"}), (None, "a", None)),
    "router only": (_view(_ext({"router": "https://lk:8443/"})), ("https://lk:8443", None, None)),
    "namespace/name": (
        _view({"namespace": "a", **_ext({"router": "http://lk", "serviceAccount": "b/cli"})}),
        ("http://lk", "a", ("b", "cli")),
    ),
    "a bare name: the context's namespace": (
        _view({"namespace": "a", **_ext({"router": "http://lk", "serviceAccount": "cli"})}),
        ("http://lk", "a", ("a", "cli")),
    ),
    "a bare name, no namespace: default": (
        _view(_ext({"router": "http://lk", "serviceAccount": "cli"})),
        ("http://lk", None, ("default", "cli")),
    ),
    "not a URL": (_view(_ext({"router": "lk:8443"})), "'router' must be an http(s) URL, got 'lk:8443'"),
    "no router": (_view(_ext({"serviceAccount": "cli"})), "'router' must be an http(s) URL, got None"),
    "a typo is refused, not ignored": (
        _view(_ext({"router": "http://lk", "serviceAcount": "cli"})), "unknown field(s) serviceAcount",
    ),
    "a/b/c": (_view(_ext({"router": "http://lk", "serviceAccount": "a/b/c"})), "must be 'name' or 'namespace/name'"),
    "/name": (_view(_ext({"router": "http://lk", "serviceAccount": "/cli"})), "must be 'name' or 'namespace/name'"),
    "not an object": (_view(_ext("http://lk")), "must be an object with 'router'"),
}  # fmt: skip


@pytest.mark.parametrize("view,want", VIEW_CASES.values(), ids=VIEW_CASES)
def test_what_a_kubeconfig_context_says(view, want):
    from lambdakube_router.ctl import kubeconfig

    if isinstance(want, str):
        with pytest.raises(kubeconfig.KubeconfigError) as err:
            kubeconfig.read_view(view)
        assert want in str(err.value) and "context 'prod', extension lambdakube.dev" in str(err.value)
        return
    found = kubeconfig.read_view(view)
    if want is None:
        assert found is None
    else:
        assert found is not None and (found.router, found.namespace, found.service_account) == want


def test_the_token_is_asked_for_the_routers_audience():
    from lambdakube_router.ctl import kubeconfig

    sel = kubeconfig.Selection(kubectl="/bin/kubectl", kubeconfig="/k", context="prod")
    assert kubeconfig.token_argv(sel, ("team-a", "cli")) == [
        "/bin/kubectl", "--kubeconfig=/k", "--context=prod",
        "create", "token", "cli", "-n", "team-a", "--audience=lambdakube", "--duration=1h",
    ]  # fmt: skip


R1 = "START RequestId: 1\nhello 1\nEND RequestId: 1\nREPORT RequestId: 1\tDuration: 1 ms\n"
R2 = "START RequestId: 2\nhello 2\nEND RequestId: 2\nREPORT RequestId: 2\tDuration: 1 ms\n"
NEW_TEXT_CASES = {
    "first look: everything": ("", R1, R1),
    "nothing new": (R1, R1, ""),
    "appended": (R1, R1 + R2, R2),
    "the window moved on": ("x" * 600 + R1, R1[10:] + R2, R2),
    "rotated away (no overlap): all of it": (R1, R2, R2),
    "window shorter than the anchor, moved": (R1, R1[5:] + R2, R2),
}


@pytest.mark.parametrize("previous,current,want", NEW_TEXT_CASES.values(), ids=NEW_TEXT_CASES)
def test_what_a_follower_prints(previous, current, want):
    assert tail.new_text(previous, current) == want


def test_prefixed_lines():
    assert tail.prefixed("e1", "a\n\nb\n") == ["[e1] a", "[e1] b"]


PERCENTILE_CASES = {
    "empty": ([], 50, None),
    "one": ([3.0], 99, 3.0),
    "median of four (nearest rank)": ([4.0, 1.0, 3.0, 2.0], 50, 2.0),
    "p99 of a hundred": ([float(i) for i in range(1, 101)], 99, 99.0),
    "p100": ([1.0, 2.0], 100, 2.0),
}


@pytest.mark.parametrize("values,p,want", PERCENTILE_CASES.values(), ids=PERCENTILE_CASES)
def test_percentile(values, p, want):
    assert stats.percentile(values, p) == want
    assert recent.percentile(sorted(values), p / 100) == want


def test_bench_summary_splits_cold_and_warm():
    samples = [
        stats.Sample(0.100, 200, 0, True),
        stats.Sample(0.002, 200, 0, False),
        stats.Sample(0.004, 200, 0, False),
        stats.Sample(0.003, 200, 1, False),  # a function error
        stats.Sample(0.001, 429, 3, None),
        stats.Sample(0.001, None, 1, None),  # no answer
    ]
    s = stats.summarize(samples, 2.0, concurrency=2, asked=6)
    assert (s["completed"], s["succeeded"], s["functionErrors"], s["throttled"], s["errors"]) == (6, 3, 1, 1, 1)
    assert s["cold"] == {"count": 1, "p50Ms": 100.0, "p90Ms": 100.0, "p99Ms": 100.0, "maxMs": 100.0}
    assert (s["warm"]["count"], s["warm"]["p50Ms"], s["warm"]["maxMs"]) == (2, 2.0, 4.0)
    assert s["perSecond"] == 3.0


AGE_CASES = {
    "unknown": (None, "-"),
    "seconds": (42.9, "42s"),
    "minutes and seconds": (303, "5m3s"),
    "minutes": (660, "11m"),
    "hours": (7440, "2h4m"),
    "days": (3 * 86400 + 4 * 3600, "3d4h"),
}


@pytest.mark.parametrize("seconds,want", AGE_CASES.values(), ids=AGE_CASES)
def test_kubectl_age(seconds, want):
    assert render.duration(seconds) == want


def test_table_pads_like_kubectl():
    assert render.table(("NAME", "READY"), [["hello", 1], ["x", None]]) == "NAME    READY\nhello   1\nx       -"


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


WINDOW_CASES = {
    # (samples: (time, run seconds | throttle reason), now, want p50 ms, p99 ms, throttles)
    "nothing yet": ([], 10.0, None, None, {}),
    "runs in the window": ([(1.0, 0.001), (2.0, 0.003), (3.0, 0.002)], 10.0, 2.0, 3.0, {}),
    "old runs fall out": ([(1.0, 0.100), (400.0, 0.001)], 401.0, 1.0, 1.0, {}),
    "throttles by reason": (
        [(1.0, "ConcurrentInvocationLimitExceeded"), (2.0, "ConcurrentInvocationLimitExceeded"), (3.0, "X")],
        5.0,
        None,
        None,
        {"ConcurrentInvocationLimitExceeded": 2, "X": 1},
    ),
}


@pytest.mark.parametrize("samples,now,p50,p99,throttles", WINDOW_CASES.values(), ids=WINDOW_CASES)
def test_recent_window(samples, now, p50, p99, throttles):
    clock = Clock()
    ring = recent.Recent(clock)
    for at, value in samples:
        clock.now = at
        ring.ran(value) if isinstance(value, float) else ring.throttled(value)
    s = recent.summary(ring, now, window=300.0)
    assert (s["p50Ms"], s["p99Ms"], s["throttles"]) == (p50, p99, throttles)
    if throttles:
        assert s["lastThrottles"][0] == {"ageSeconds": 2.0, "reason": "X"}  # newest first


def test_recent_rings_are_bounded():
    ring = recent.Recent(Clock())
    for _ in range(recent.DURATIONS + 10):
        ring.ran(0.001)
        ring.throttled("R")
    assert len(ring.durations) == recent.DURATIONS and len(ring.throttles) == recent.THROTTLES


def test_quota_view_splits_reserved_and_unreserved():
    from lambdakube_router import overview

    limits = NamespaceLimits("ns")
    limits.set_quota(ConcurrencyQuotaSpec(concurrentExecutions=20, minimumUnreserved=5), 0.0)
    limits.set_function("big", FunctionSpec.model_validate(_spec(reservedConcurrency=10)), 0.0)
    limits.set_function("huge", FunctionSpec.model_validate(_spec(reservedConcurrency=10)), 0.0)
    limits.set_function("free", FunctionSpec.model_validate(_spec()), 0.0)
    assert limits.try_acquire("big") is None and limits.try_acquire("free") is None
    q = overview.quota_view(limits)
    assert (q["reserved"], q["reservedInFlight"], q["unreserved"], q["unreservedInFlight"]) == (10, 1, 10, 1)
    assert q["granted"] == {"big": 10} and list(q["rejected"]) == ["huge"] and q["inFlight"] == 2


def _spec(**kw) -> dict:
    return {"handler": "index.handler", "code": {"inline": {"source": "def handler(e, c):\n    return 1\n"}}, **kw}


@pytest.mark.parametrize(
    "follow, selection, want_head, want_tail",
    [
        pytest.param(False, {}, [], ["--limit-bytes=4096"], id="once: the end of each pod's log"),
        pytest.param(True, {}, [], ["--follow"], id="follow: everything new"),
        pytest.param(
            False, {"kubeconfig": "/k", "context": "prod"}, ["--kubeconfig=/k", "--context=prod"],
            ["--limit-bytes=4096"], id="the command's own kubeconfig and context",
        ),
    ],
)  # fmt: skip
def test_cluster_logs_are_the_pods_through_kubectl(follow, selection, want_head, want_tail):
    from lambdakube_router.ctl.commands import kubectl_logs_argv
    from lambdakube_router.ctl.kubeconfig import Selection

    argv = kubectl_logs_argv(Selection(kubectl="/bin/kubectl", **selection), "team-a", "greeter", follow, 4096)
    assert argv == [
        "/bin/kubectl", *want_head, "logs", "-n", "team-a", "-l", "lambdakube.dev/function=greeter", "--prefix",
        "--max-log-requests=50", "--ignore-errors", *want_tail,
    ]  # fmt: skip
