"""The pod backend's decisions (``backends/claims.py``) as tables of named cases: which
provisioned pod is claimed, which generic pods are tried, what happens to released pods,
each step of a fresh start, which announces are believed, and the ownership
transitions. Pods are the dicts the cache holds; no cluster, no runtime, no clock."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from lambdakube.formats import rfc3339
from lambdakube.resources import labels
from lambdakube_router.backends.base import SOURCE_FRESH, SOURCE_PROVISIONED, FunctionRef
from lambdakube_router.backends.claims import (
    Answer,
    Candidate,
    Claim,
    Distrust,
    Fail,
    Generic,
    Ownership,
    PodEnv,
    Probe,
    ProbeInit,
    Ready,
    Wait,
    accept_announce,
    choose_provisioned,
    fresh_step,
    generic_candidates,
    lost_environments,
    released_actions,
    version_selector,
)

NOW = datetime(2026, 1, 1, 12, 0, 0, tzinfo=timezone.utc)
FN = FunctionRef("ns", "hello", "uid-1")
H, OLD_H = "hash-new", "hash-old"
IMAGE = "img-hash"
ADDR = "10.0.0.7:8080"


def pod(
    name: str,
    *,
    age: float = 10,
    ready: bool = True,
    role: str = labels.ROLE_PROVISIONED,
    function: str | None = "hello",
    h: str | None = H,
    draining: bool = False,
    deleting: bool = False,
    ip: str | None = "10.0.0.7",
    init_error: str | None = None,
    image_hash: str | None = None,
    phase: str = "Running",
    terminated: dict | None = None,
    waiting: dict | None = None,
    rv: str = "1",
    namespace: str = "ns",
    version: str | None = None,
) -> dict:
    """A pod as the cache holds it (what the API returns), built from what a rule reads."""
    pod_labels = {labels.ROLE: role}
    if version:
        pod_labels[labels.VERSION] = version
    if function:
        pod_labels[labels.FUNCTION] = function
    if h:
        pod_labels[labels.SPEC_HASH] = h
    if draining:
        pod_labels[labels.DRAINING] = "true"
    if image_hash:
        pod_labels[labels.RUNTIME_IMAGE_HASH] = image_hash
    meta: dict = {
        "name": name,
        "namespace": namespace,
        "labels": pod_labels,
        "resourceVersion": rv,
        "creationTimestamp": rfc3339(NOW - timedelta(seconds=age)),
        "annotations": {},
    }
    if deleting:
        meta["deletionTimestamp"] = rfc3339(NOW)
    if init_error:
        meta["annotations"][labels.INIT_ERROR] = init_error
    status: dict = {"phase": phase, "conditions": [{"type": "Ready", "status": "True" if ready else "False"}]}
    if ip:
        status["podIP"] = ip
    if terminated:
        status["containerStatuses"] = [{"name": "runtime", "state": {"terminated": terminated}}]
    if waiting:
        status["containerStatuses"] = [{"name": "runtime", "state": {"waiting": waiting}}]
    return {"metadata": meta, "status": status}


def key(name: str) -> tuple[str, str]:
    return ("ns", name)


# -- provisioned -------------------------------------------------------------------------

PROVISIONED = [
    # (case, pods, claimed, tried, probed, cache_error, expected)
    ("no pods: wait", [], set(), (), {}, None, Wait()),
    (
        "the oldest Ready pod is claimed",
        [pod("young", age=5), pod("old", age=50)],
        set(),
        (),
        {},
        None,
        Claim("old", ADDR),
    ),
    ("equal ages: by name", [pod("b"), pod("a")], set(), (), {}, None, Claim("a", ADDR)),
    (
        "a pod this router claimed is skipped",
        [pod("young", age=5), pod("old", age=50)],
        {key("old")},
        (),
        {},
        None,
        Claim("young", ADDR),
    ),
    (
        "a claimed pod of another namespace is not this one",
        [pod("p")],
        {("other", "p")},
        (),
        {},
        None,
        Claim("p", ADDR),
    ),
    ("a pod of another namespace is never claimed", [pod("p", namespace="other")], set(), (), {}, None, Wait()),
    ("a draining pod is never claimed", [pod("p", draining=True)], set(), (), {}, None, Wait()),
    ("a pod being deleted is never claimed", [pod("p", deleting=True)], set(), (), {}, None, Wait()),
    ("a pod of the older spec is never claimed", [pod("p", h=OLD_H)], set(), (), {}, None, Wait()),
    ("another function's pod is never claimed", [pod("p", function="other")], set(), (), {}, None, Wait()),
    ("an on-demand pod is not provisioned", [pod("p", role=labels.ROLE_ON_DEMAND)], set(), (), {}, None, Wait()),
    ("a Ready pod without an address waits", [pod("p", ip=None)], set(), (), {}, None, Wait()),
    (
        "a pod whose /readyz failed this pass is not tried again",
        [pod("old", age=50), pod("young", age=5)],
        set(),
        ("old",),
        {},
        None,
        Claim("young", ADDR),
    ),
    ("every Ready pod tried: wait for a change", [pod("p")], set(), ("p",), {}, None, Wait()),
    ("a not-Ready pod is probed for an Init error", [pod("p", ready=False)], set(), (), {}, None, ProbeInit("p", ADDR)),
    (
        "the oldest not-Ready pod is probed first",
        [pod("young", ready=False, age=5), pod("old", ready=False, age=50)],
        set(),
        (),
        {},
        None,
        ProbeInit("old", ADDR),
    ),
    ("a pod probed this pass without an error: wait", [pod("p", ready=False)], set(), (), {"p": None}, None, Wait()),
    ("a not-Ready pod without an address is not probed", [pod("p", ready=False, ip=None)], set(), (), {}, None, Wait()),
    (
        "a Ready pod is claimed before any probe",
        [pod("starting", ready=False, age=50), pod("ready", age=5)],
        set(),
        (),
        {},
        None,
        Claim("ready", ADDR),
    ),
    (
        "an annotated Init error fails the start",
        [pod("p", ready=False, init_error="ImportError: left-pad")],
        set(),
        (),
        {},
        None,
        Fail("ns/hello: Init failed: ImportError: left-pad"),
    ),
    (
        "the router's own full message is not prefixed twice",
        [pod("p", init_error="ns/hello: Init failed: X: y")],
        set(),
        (),
        {},
        None,
        Fail("ns/hello: Init failed: X: y"),
    ),
    (
        "an Init error a probe found fails the start",
        [pod("p", ready=False)],
        set(),
        (),
        {"p": "ns/hello: Init failed: E: m"},
        None,
        Fail("ns/hello: Init failed: E: m"),
    ),
    (
        "the oldest pod's Init error is the one reported",
        [pod("young", age=5, init_error="second"), pod("old", age=50, init_error="first")],
        set(),
        (),
        {},
        None,
        Fail("ns/hello: Init failed: first"),
    ),
    (
        "a Ready pod serves even while an older one reports an Init error",
        [pod("broken", age=50, init_error="boom"), pod("fine", age=5)],
        set(),
        (),
        {},
        None,
        Claim("fine", ADDR),
    ),
    (
        "a Ready pod with an Init error annotation is not claimed",
        [pod("p", init_error="boom")],
        set(),
        (),
        {},
        None,
        Fail("ns/hello: Init failed: boom"),
    ),
    (
        "a pending probe comes before reporting another pod's Init error",
        [pod("broken", age=50, init_error="boom"), pod("starting", ready=False, age=5)],
        set(),
        (),
        {},
        None,
        ProbeInit("starting", ADDR),
    ),
    (
        "a draining pod's Init error is not this spec's",
        [pod("p", draining=True, init_error="boom")],
        set(),
        (),
        {},
        None,
        Wait(),
    ),
    (
        "a cache that cannot list pods fails the wait",
        [],
        set(),
        (),
        {},
        "listing pods (ns): HTTP 403",
        Fail("ns/hello: listing pods (ns): HTTP 403"),
    ),
    (
        "a Ready pod is claimed even while the cache reports an error",
        [pod("p")],
        set(),
        (),
        {},
        "listing pods (other): HTTP 403",
        Claim("p", ADDR),
    ),
]


@pytest.mark.parametrize(
    "case,pods,claimed,tried,probed,cache_error,expected", PROVISIONED, ids=[c[0] for c in PROVISIONED]
)
def test_choose_provisioned(case, pods, claimed, tried, probed, cache_error, expected):
    got = choose_provisioned(pods, claimed, FN, H, tried=tried, probed=probed, cache_error=cache_error)
    assert got == expected


FN_V1 = FunctionRef("ns", "hello", version="1")

# A version published from the unchanged head has the head's hash: the label decides.
BY_VERSION = [
    # (case, fn, pods, expected)
    ("$LATEST never claims a version's pod", FN, [pod("v1", version="1", age=50)], Wait()),
    ("$LATEST claims its own (no version label)", FN, [pod("v1", version="1", age=50), pod("l")], Claim("l", ADDR)),
    ("a version claims only its own pods", FN_V1, [pod("l", age=50), pod("v1", version="1")], Claim("v1", ADDR)),
    ("nor another version's", FN_V1, [pod("v2", version="2")], Wait()),
]


@pytest.mark.parametrize("case,fn,pods,expected", BY_VERSION, ids=[c[0] for c in BY_VERSION])
def test_choose_provisioned_by_version(case, fn, pods, expected):
    assert choose_provisioned(pods, set(), fn, H) == expected


def test_version_selector_is_the_number_or_no_label():
    assert version_selector(FN) == {labels.VERSION: None}
    assert version_selector(FN_V1) == {labels.VERSION: "1"}


# -- generic -----------------------------------------------------------------------------


def generic(name: str, **kw) -> dict:
    kw.setdefault("role", labels.ROLE_GENERIC)
    kw.setdefault("function", None)
    kw.setdefault("h", None)
    kw.setdefault("image_hash", IMAGE)
    return pod(name, **kw)


GENERIC = [
    # (case, pods, claimed, expected names in order)
    ("none", [], set(), []),
    ("oldest first", [generic("young", age=5), generic("old", age=50)], set(), ["old", "young"]),
    ("a pod this router claimed is skipped", [generic("a"), generic("b")], {key("a")}, ["b"]),
    ("a pod of another namespace is skipped", [generic("a", namespace="other")], set(), []),
    ("another runtime image is skipped", [generic("a", image_hash="other")], set(), []),
    ("a pod with a function is no longer generic", [generic("a", function="hello")], set(), []),
    ("an on-demand pod is not generic", [generic("a", role=labels.ROLE_ON_DEMAND)], set(), []),
    ("a not-Ready pod is skipped", [generic("a", ready=False)], set(), []),
    ("a pod without an address is skipped", [generic("a", ip=None)], set(), []),
    ("a pod being deleted is skipped", [generic("a", deleting=True)], set(), []),
]


@pytest.mark.parametrize("case,pods,claimed,expected", GENERIC, ids=[c[0] for c in GENERIC])
def test_generic_candidates(case, pods, claimed, expected):
    got = generic_candidates(pods, claimed, "ns", IMAGE)
    assert [c.name for c in got] == expected
    assert all(isinstance(c, Candidate) and c.address == ADDR and c.pod["metadata"]["name"] == c.name for c in got)


# -- released provisioned pods -----------------------------------------------------------

RELEASED = [
    # (case, released, claimed, cache, (forget, delete))
    ("nothing released", set(), set(), {}, (set(), [])),
    ("a released pod still serving the operator waits", {key("a")}, set(), {"a": pod("a")}, (set(), [])),
    ("a released pod that is gone is forgotten", {key("a")}, set(), {}, ({key("a")}, [])),
    (
        "a released pod labelled draining is deleted",
        {key("a")},
        set(),
        {"a": pod("a", draining=True)},
        ({key("a")}, [key("a")]),
    ),
    (
        "a draining pod claimed again is forgotten, never deleted",
        {key("a")},
        {key("a")},
        {"a": pod("a", draining=True)},
        ({key("a")}, []),
    ),
    (
        "several at once, in name order",
        {key("b"), key("a"), key("c")},
        set(),
        {"a": pod("a", draining=True), "b": pod("b", draining=True), "c": pod("c")},
        ({key("a"), key("b")}, [key("a"), key("b")]),
    ),
]


@pytest.mark.parametrize("case,released,claimed,cache,expected", RELEASED, ids=[c[0] for c in RELEASED])
def test_released_actions(case, released, claimed, cache, expected):
    assert released_actions(released, claimed, lambda ns, name: cache.get(name)) == expected


# -- environments whose pod ended ----------------------------------------------------------

SERVING = PodEnv("ns", "a", labels.ROLE_ON_DEMAND, SOURCE_FRESH)
LOST = [
    # (case, serving {env id: seen}, held {env id: PodEnv}, cache {name: pod}, (seen, lost))
    ("a running pod seen for the first time", {"a": False}, {"a": SERVING}, {"a": pod("a")}, (["a"], [])),
    ("a running pod seen before: nothing", {"a": True}, {"a": SERVING}, {"a": pod("a")}, ([], [])),
    (
        "a pod not in the cache yet (Ready by its announce): not lost",
        {"a": False},
        {"a": SERVING},
        {},
        ([], []),
    ),
    ("a pod seen, then gone (deleted from outside): lost", {"a": True}, {"a": SERVING}, {}, ([], ["a"])),
    ("a pod being deleted: lost", {"a": True}, {"a": SERVING}, {"a": pod("a", deleting=True)}, ([], ["a"])),
    (
        "a pod whose runtime container exited: lost",
        {"a": True},
        {"a": SERVING},
        {"a": pod("a", ready=False, terminated={"exitCode": 137, "reason": "Error"})},
        ([], ["a"]),
    ),
    ("a failed pod (evicted): lost", {"a": False}, {"a": SERVING}, {"a": pod("a", phase="Failed")}, ([], ["a"])),
    (
        "a pod that is only not Ready (a slow probe): not lost",
        {"a": True},
        {"a": SERVING},
        {"a": pod("a", ready=False)},
        ([], []),
    ),
    ("an environment no longer held: lost", {"a": True}, {}, {"a": pod("a")}, ([], ["a"])),
]


@pytest.mark.parametrize("case,serving,held,cache,expected", LOST, ids=[c[0] for c in LOST])
def test_lost_environments(case, serving, held, cache, expected):
    assert lost_environments(serving, held.get, lambda ns, name: cache.get(name)) == expected


# -- fresh starts ------------------------------------------------------------------------

NAME = "hello-d1234"
ANNOUNCED = "10.0.0.9:8080"


def fresh(**kw) -> dict:
    kw.setdefault("role", labels.ROLE_ON_DEMAND)
    return pod(NAME, **kw)


def answer(status: int, address: str = ADDR, via_announce: bool = False, **info) -> Answer:
    return Answer(address, via_announce, status, info)


INIT_FAILED = {"state": "init_failed", "error": {"errorType": "ImportError", "errorMessage": "left-pad"}}

FRESH = [
    # (case, pod, seen, announced, answer, cache_error, expected)
    ("not in the cache yet: wait", None, False, None, None, None, Wait()),
    (
        "gone after it was seen: failed",
        None,
        True,
        None,
        None,
        None,
        Fail(f"ns/hello: environment pod {NAME} was deleted while starting"),
    ),
    (
        "being deleted: failed",
        fresh(deleting=True),
        True,
        None,
        None,
        None,
        Fail(f"ns/hello: environment pod {NAME} was deleted while starting"),
    ),
    ("no address yet: wait", fresh(ip=None, ready=False), True, None, None, None, Wait()),
    (
        "no address and the cache cannot list pods: failed",
        fresh(ip=None),
        True,
        None,
        None,
        "HTTP 403",
        Fail("ns/hello: HTTP 403"),
    ),
    ("not in the cache and no way to see it: failed", None, False, None, None, "HTTP 403", Fail("ns/hello: HTTP 403")),
    ("an address: probed (not the Ready condition)", fresh(ready=False), True, None, None, None, Probe(ADDR)),
    ("an address while the cache errs: still probed", fresh(ready=False), True, None, None, "HTTP 500", Probe(ADDR)),
    (
        "an Init error annotation: failed",
        fresh(init_error="ImportError: x"),
        True,
        None,
        None,
        None,
        Fail("ns/hello: Init failed: ImportError: x"),
    ),
    (
        "the runtime container exited: failed",
        fresh(ready=False, terminated={"exitCode": 1, "reason": "Error", "message": "bye"}),
        True,
        None,
        None,
        None,
        Fail("ns/hello: runtime container exited with code 1 (Error): bye"),
    ),
    (
        "a Secret it refers to is missing: failed at once with the kubelet's message",
        fresh(ready=False, waiting={"reason": "CreateContainerConfigError", "message": 'secret "db" not found'}),
        True,
        None,
        None,
        None,
        Fail('ns/hello: cannot start the runtime container: CreateContainerConfigError: secret "db" not found'),
    ),
    (
        "still creating its container: probed",
        fresh(ready=False, waiting={"reason": "ContainerCreating"}),
        True,
        None,
        None,
        None,
        Probe(ADDR),
    ),
    (
        "the pod ended: failed",
        fresh(ready=False, phase="Failed"),
        True,
        None,
        None,
        None,
        Fail(f"ns/hello: pod {NAME} is Failed:"),
    ),
    (
        "only the announce knows the address: probed via the announce",
        fresh(ip=None),
        True,
        ANNOUNCED,
        None,
        None,
        Probe(ANNOUNCED, via_announce=True),
    ),
    (
        "announced before the cache saw the pod: probed",
        None,
        False,
        ANNOUNCED,
        None,
        None,
        Probe(ANNOUNCED, via_announce=True),
    ),
    ("the pod's own address wins over the announce", fresh(), True, ANNOUNCED, None, None, Probe(ADDR)),
    (
        "an answer from another address is stale: probed",
        fresh(),
        True,
        ANNOUNCED,
        answer(200, ANNOUNCED, True, envId=NAME),
        None,
        Probe(ADDR),
    ),
    (
        "200: ready with Init's duration",
        fresh(),
        True,
        None,
        answer(200, initDurationMs=120, state="ready"),
        None,
        Ready(ADDR, 0.12),
    ),
    ("generic: listens, waits for its code", fresh(), True, None, answer(503, state="generic"), None, Generic(ADDR)),
    (
        "init_failed: failed and written to the pod",
        fresh(),
        True,
        None,
        answer(503, **INIT_FAILED),
        None,
        Fail("ns/hello: Init failed: ImportError: left-pad", annotate=True),
    ),
    (
        "not ready yet: asked again soon",
        fresh(),
        True,
        None,
        answer(503, state="initializing"),
        None,
        Wait(reprobe=True),
    ),
    ("no answer: asked again soon", fresh(), True, None, answer(0), None, Wait(reprobe=True)),
    (
        "the announced address is this pod's runtime",
        None,
        False,
        ANNOUNCED,
        answer(503, ANNOUNCED, True, envId=NAME, state="generic"),
        None,
        Generic(ANNOUNCED),
    ),
    (
        "the announced address answers as another runtime: distrusted",
        fresh(ip=None),
        True,
        ANNOUNCED,
        answer(200, ANNOUNCED, True, envId="someone-else"),
        None,
        Distrust(ANNOUNCED, "someone-else"),
    ),
    (
        "the announced address does not answer: distrusted",
        fresh(ip=None),
        True,
        ANNOUNCED,
        answer(0, ANNOUNCED, True),
        None,
        Distrust(ANNOUNCED, None),
    ),
]


@pytest.mark.parametrize("case,pod_,seen,announced,answer_,cache_error,expected", FRESH, ids=[c[0] for c in FRESH])
def test_fresh_step(case, pod_, seen, announced, answer_, cache_error, expected):
    got = fresh_step(FN, NAME, pod=pod_, seen=seen, announced=announced, answer=answer_, cache_error=cache_error)
    assert got == expected


# -- announces ---------------------------------------------------------------------------

TOKEN = "t" * 32
ANNOUNCES = [
    # (case, expected token, address, token, peer, accepted)
    ("the pod's token from the announced IP", TOKEN, "10.0.0.9:8080", TOKEN, "10.0.0.9", True),
    ("an IPv6 address", TOKEN, "[fd00::9]:8080", TOKEN, "fd00::9", True),
    ("an IPv4 peer seen as IPv4-mapped IPv6", TOKEN, "10.0.0.9:8080", TOKEN, "::ffff:10.0.0.9", True),
    ("a pod this router is not starting", None, "10.0.0.9:8080", TOKEN, "10.0.0.9", False),
    ("the wrong token", TOKEN, "10.0.0.9:8080", "x" * 32, "10.0.0.9", False),
    ("from another IP", TOKEN, "10.0.0.9:8080", TOKEN, "10.0.0.10", False),
    ("no peer", TOKEN, "10.0.0.9:8080", TOKEN, None, False),
    ("no port", TOKEN, "10.0.0.9", TOKEN, "10.0.0.9", False),
    ("port out of range", TOKEN, "10.0.0.9:70000", TOKEN, "10.0.0.9", False),
    ("not an IP", TOKEN, "pod.local:8080", TOKEN, "10.0.0.9", False),
]


@pytest.mark.parametrize("case,expected_token,address,token,peer,accepted", ANNOUNCES, ids=[c[0] for c in ANNOUNCES])
def test_accept_announce(case, expected_token, address, token, peer, accepted):
    assert accept_announce(expected_token, address, token, peer) is accepted


# -- ownership transitions ---------------------------------------------------------------

PROV = PodEnv("ns", "p1", labels.ROLE_PROVISIONED, SOURCE_PROVISIONED)
MINE = PodEnv("ns", "f1", labels.ROLE_ON_DEMAND, SOURCE_FRESH)


def state(book: Ownership) -> dict:
    return {
        "claimed": set(book.claimed),
        "held": set(book.held),
        "released": set(book.released),
        "pending": {n: p.address for n, p in book.pending.items()},
        "owned": [p.name for p in book.owned()],
        "serving": dict(book.serving),
    }


EMPTY = {"claimed": set(), "held": set(), "released": set(), "pending": {}, "owned": [], "serving": {}}

OWNERSHIP = [
    # (case, steps: (method, args, result or ...), final state)
    (
        "a pod is claimed once",
        [("claim", (PROV.key,), True), ("claim", (PROV.key,), False)],
        {**EMPTY, "claimed": {PROV.key}},
    ),
    (
        "an undone claim can be claimed again",
        [("claim", (PROV.key,), True), ("unclaim", (PROV.key,), None), ("claim", (PROV.key,), True)],
        {**EMPTY, "claimed": {PROV.key}},
    ),
    (
        "a held provisioned pod is not the router's to delete at close",
        [("claim", (PROV.key,), True), ("hold", (PROV,), None), ("hold", (MINE,), None)],
        {**EMPTY, "claimed": {PROV.key}, "held": {"p1", "f1"}, "owned": ["f1"]},
    ),
    (
        "giving a provisioned pod back: released, claimable again",
        [("claim", (PROV.key,), True), ("hold", (PROV,), None), ("give_back", (PROV,), None)],
        {**EMPTY, "released": {PROV.key}},
    ),
    ("a released pod forgotten", [("give_back", (PROV,), None), ("forget_released", ({PROV.key},), None)], EMPTY),
    (
        "letting go of an environment",
        [("hold", (MINE,), None), ("let_go", ("f1",), MINE), ("let_go", ("f1",), None)],
        EMPTY,
    ),
    (
        "a served environment is watched, unseen until the cache shows it",
        [("hold", (MINE,), None), ("serve", ("f1",), None)],
        {**EMPTY, "held": {"f1"}, "owned": ["f1"], "serving": {"f1": False}},
    ),
    (
        "seen in the cache: its absence is news from now on",
        [("hold", (MINE,), None), ("serve", ("f1",), None), ("saw", (["f1", "other"],), None)],
        {**EMPTY, "held": {"f1"}, "owned": ["f1"], "serving": {"f1": True}},
    ),
    (
        "a lost environment is reported once: no longer watched, still held until stopped",
        [("hold", (MINE,), None), ("serve", ("f1",), None), ("lost", ("f1",), None)],
        {**EMPTY, "held": {"f1"}, "owned": ["f1"]},
    ),
    (
        "letting go of a served environment stops watching it",
        [("hold", (MINE,), None), ("serve", ("f1",), None), ("let_go", ("f1",), MINE)],
        EMPTY,
    ),
    (
        "giving a served provisioned pod back stops watching it",
        [("claim", (PROV.key,), True), ("hold", (PROV,), None), ("serve", ("p1",), None), ("give_back", (PROV,), None)],
        {**EMPTY, "released": {PROV.key}},
    ),
    (
        "a fresh start takes announces until it ends",
        [("expect", ("f1", TOKEN), ...), ("token_of", ("f1",), TOKEN), ("announce", ("f1", ANNOUNCED), None)],
        {**EMPTY, "pending": {"f1": ANNOUNCED}},
    ),
    (
        "an ended start has no token",
        [
            ("expect", ("f1", TOKEN), ...),
            ("started", ("f1",), None),
            ("token_of", ("f1",), None),
            ("announce", ("f1", ANNOUNCED), None),
        ],
        EMPTY,
    ),
    (
        "distrusting forgets that address only",
        [
            ("expect", ("f1", TOKEN), ...),
            ("announce", ("f1", ANNOUNCED), None),
            ("distrust", ("f1", "10.0.0.1:1"), None),
        ],
        {**EMPTY, "pending": {"f1": ANNOUNCED}},
    ),
    (
        "distrusting the announced address",
        [("expect", ("f1", TOKEN), ...), ("announce", ("f1", ANNOUNCED), None), ("distrust", ("f1", ANNOUNCED), None)],
        {**EMPTY, "pending": {"f1": None}},
    ),
    (
        "clear at close forgets held and released pods",
        [("claim", (PROV.key,), True), ("hold", (MINE,), None), ("give_back", (PROV,), None), ("clear", (), None)],
        EMPTY,
    ),
]


@pytest.mark.parametrize("case,steps,final", OWNERSHIP, ids=[c[0] for c in OWNERSHIP])
def test_ownership(case, steps, final):
    book = Ownership()
    for method, args, result in steps:
        got = getattr(book, method)(*args)
        if result is not ...:
            assert got == result, (method, args)
    assert state(book) == final
