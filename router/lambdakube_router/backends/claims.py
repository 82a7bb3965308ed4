"""What the pod backend decides, without doing any of it: which pod to claim, which
released pod to delete, what a fresh start does next, whether an announce is believed.

Why a module of its own: ``kubernetes.py`` used to make these choices in the middle of
its API calls and probes, and mutated four collections (claimed, released, held and
pending pods) from concurrent coroutines. Here each rule is a function of what the pod
cache shows, what this router holds and what the runtime last answered, returning one
action as data; ``kubernetes.py`` only executes it (create, patch, delete, ``/readyz``,
``/init``) and asks again. The rules are tested as tables (``tests/unit/test_claims.py``)
without a cluster, a runtime or a clock.

What this router holds is ``Ownership``: the only writer of those four collections,
through named transitions, so a claim, a release or an announce reads as one step.
"""

from __future__ import annotations

import hmac
import ipaddress
from collections.abc import Callable, Collection, Iterable, Mapping
from dataclasses import dataclass, field

from lambdakube.models import LATEST
from lambdakube.resources import labels, pod_address
from lambdakube.resources.code import init_error_message
from lambdakube.resources.podview import (
    annotated_init_error,
    is_draining,
    is_ready,
    is_terminating,
    terminated_reason,
    version_of,
)
from lambdakube_router.backends.base import FunctionRef

#: A pod by (namespace, name).
Key = tuple[str, str]


@dataclass
class PodEnv:
    """``EnvironmentHandle.private`` of a pod environment."""

    namespace: str
    name: str
    role: str
    #: ``fresh``, ``generic`` or ``provisioned`` (``X-Environment-Source`` of cold starts).
    source: str

    @property
    def key(self) -> Key:
        return self.namespace, self.name


# -- reading a cached pod ------------------------------------------------------------------


def _meta(pod: Mapping) -> Mapping:
    return pod.get("metadata") or {}


def _labels(pod: Mapping) -> Mapping:
    return _meta(pod).get("labels") or {}


def oldest_first(pods: Iterable[Mapping]) -> list[Mapping]:
    """Oldest first (then by name): the pod that has been waiting longest is used first,
    and two routers' orders agree."""
    return sorted(pods, key=lambda p: (_meta(p).get("creationTimestamp") or "", _meta(p).get("name") or ""))


def init_seconds(info: Mapping) -> float:
    """Init's duration from a runtime's answer (``initDurationMs``), 0 when absent."""
    try:
        return float(info.get("initDurationMs") or 0) / 1000
    except (TypeError, ValueError):
        return 0.0


def init_failed(fn: FunctionRef, text: str) -> str:
    """The invoker's message for an Init error a pod reports (its annotation is often
    already the router's own full message: not prefixed twice)."""
    return text if text.startswith(f"{fn}:") else f"{fn}: Init failed: {text}"


def reported_init_error(fn: FunctionRef, info: Mapping) -> str | None:
    """The Init error a runtime's ``/readyz`` answer reports (``init_failed``), else None."""
    return init_error_message(str(fn), dict(info)) if info.get("state") == "init_failed" else None


def version_selector(fn: FunctionRef) -> dict[str, str | None]:
    """The pod-cache selector of ``fn``'s version: its number, or (``$LATEST``) no
    version label at all."""
    return {labels.VERSION: None if fn.version == LATEST else fn.version}


# -- actions -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Claim:
    """Claim this provisioned pod (then check its ``/readyz`` answers 200)."""

    name: str
    address: str


@dataclass(frozen=True)
class ProbeInit:
    """Read this not-Ready provisioned pod's ``/readyz``: nobody else does, and an Init
    error it reports should fail the waiting start (and be written to the pod)."""

    name: str
    address: str


@dataclass(frozen=True)
class Fail:
    """Fail the start with ``message``; ``annotate``: also write it to the pod as
    ``lambdakube.dev/init-error`` (the runtime said so; the pod does not show it yet)."""

    message: str
    annotate: bool = False


@dataclass(frozen=True)
class Wait:
    """Nothing to do until the pod cache changes. ``reprobe``: an address answered
    "not yet": ask it again soon even without a change."""

    reprobe: bool = False


ProvisionedChoice = Claim | ProbeInit | Fail | Wait


# -- provisioned pods ----------------------------------------------------------------------


def choose_provisioned(
    pods: Iterable[Mapping],
    claimed: Collection[Key],
    fn: FunctionRef,
    spec_hash: str,
    *,
    tried: Collection[str] = (),
    probed: Mapping[str, str | None] | None = None,
    cache_error: str | None = None,
) -> ProvisionedChoice:
    """The next step of waiting for a provisioned pod of ``fn``'s current spec.

    Candidates: pods of ``fn``'s namespace labelled for ``fn``, role provisioned, of
    ``spec_hash`` and of ``fn``'s version (a version published from an unchanged head
    has the head's hash: only the version label tells their pods apart), neither
    draining nor being deleted nor claimed by this router. Then,
    first match wins:
    the oldest Ready candidate with an address not ``tried`` this pass (its ``/readyz``
    did not answer 200) is claimed; a not-Ready candidate with an address not yet
    ``probed`` this pass is probed for an Init error; an Init error (the pod's
    annotation, or what a probe found, by name in ``probed``) fails the start, and so
    does a pod cache that cannot list pods; else wait for the cache's next change.
    A Ready pod is claimed even while another reports an Init error: it serves.
    """
    probed = probed or {}
    candidates = [
        p
        for p in oldest_first(pods)
        if _meta(p).get("namespace", fn.namespace) == fn.namespace
        and _labels(p).get(labels.FUNCTION) == fn.name
        and _labels(p).get(labels.ROLE) == labels.ROLE_PROVISIONED
        and _labels(p).get(labels.SPEC_HASH) == spec_hash
        and version_of(p) == fn.version
        and not is_draining(p)
        and not is_terminating(p)
        and (fn.namespace, _meta(p).get("name")) not in claimed
    ]
    errors: list[str] = []
    probe: ProbeInit | None = None
    for pod in candidates:
        name = _meta(pod).get("name") or ""
        annotated = annotated_init_error(pod)
        address = pod_address(dict(pod))
        if annotated or probed.get(name):
            errors.append(annotated or probed[name] or "")
        elif address is None:
            continue
        elif is_ready(pod):
            if name not in tried:
                return Claim(name, address)
        elif probe is None and name not in probed:
            probe = ProbeInit(name, address)
    if probe is not None:
        return probe
    if errors:
        return Fail(init_failed(fn, errors[0]))
    if cache_error:
        return Fail(f"{fn}: {cache_error}")
    return Wait()


# -- generic pods --------------------------------------------------------------------------


@dataclass(frozen=True)
class Candidate:
    """A generic pod worth claiming: its name, where its runtime listens, and the pod as
    listed (its resourceVersion is the claim's precondition)."""

    name: str
    address: str
    pod: Mapping = field(repr=False, compare=False)


def generic_candidates(
    pods: Iterable[Mapping], claimed: Collection[Key], namespace: str, image_hash: str
) -> list[Candidate]:
    """The generic pods of ``namespace`` to try, in order (oldest first): role generic,
    no function yet, the runtime image this router would use, Ready with an address,
    not being deleted, not claimed by this router."""
    out = []
    for pod in oldest_first(pods):
        meta, have = _meta(pod), _labels(pod)
        address = pod_address(dict(pod))
        if (
            meta.get("namespace", namespace) != namespace
            or have.get(labels.ROLE) != labels.ROLE_GENERIC
            or labels.FUNCTION in have
            or have.get(labels.RUNTIME_IMAGE_HASH) != image_hash
            or is_terminating(pod)
            or not is_ready(pod)
            or address is None
            or (namespace, meta.get("name")) in claimed
        ):
            continue
        out.append(Candidate(meta["name"], address, pod))
    return out


# -- released provisioned pods -------------------------------------------------------------


def released_actions(
    released: Iterable[Key], claimed: Collection[Key], cache_get: Callable[[str, str], Mapping | None]
) -> tuple[set[Key], list[Key]]:
    """What to do with the provisioned pods this router gave back: ``(forget, delete)``.

    A released pod that is gone is forgotten; one the operator labelled draining is
    forgotten and deleted (nobody here uses it, the operator's deadline is only a
    backstop), unless this router claimed it again meanwhile; the rest wait."""
    forget: set[Key] = set()
    delete: list[Key] = []
    for key in sorted(released):
        pod = cache_get(*key)
        if pod is None:
            forget.add(key)
        elif is_draining(pod):
            forget.add(key)
            if key not in claimed:
                delete.append(key)
    return forget, delete


# -- environments whose pod ended ----------------------------------------------------------


def pod_ended(pod: Mapping) -> bool:
    """The pod's runtime is gone for good: the pod is being deleted, it failed or
    succeeded, or its container terminated (``restartPolicy: Never``: nothing restarts it)."""
    return is_terminating(pod) or terminated_reason(pod) is not None


def lost_environments(
    serving: Mapping[str, bool], where: Callable[[str], PodEnv | None], cache_get: Callable[[str, str], Mapping | None]
) -> tuple[list[str], list[str]]:
    """``(seen, lost)`` of the environments handed to pools (``Ownership.serving``): those
    whose pod is now in the cache, and those whose pod ended or is gone (deleted from
    outside, evicted, its runtime crashed), to report once. A pod never seen in the
    cache yet is not lost for being absent: a fresh pod can be Ready through its
    announce before the watch delivers it."""
    seen: list[str] = []
    lost: list[str] = []
    for env_id, was_seen in sorted(serving.items()):
        pod_env = where(env_id)
        pod = cache_get(*pod_env.key) if pod_env is not None else None
        if pod is None:
            if was_seen or pod_env is None:
                lost.append(env_id)
        elif pod_ended(pod):
            lost.append(env_id)
        elif not was_seen:
            seen.append(env_id)
    return seen, lost


# -- fresh pods ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Answer:
    """What ``address`` answered to ``/readyz`` (status 0, info {}: it did not answer)."""

    address: str
    via_announce: bool
    status: int
    info: Mapping


@dataclass(frozen=True)
class Probe:
    """Ask ``address`` for ``/readyz`` (``via_announce``: the address came from the
    runtime's announce, not from the pod's status)."""

    address: str
    via_announce: bool = False


@dataclass(frozen=True)
class Distrust:
    """The announced address answered as another runtime (``answered_as``), or not at
    all: forget the announce and trust only the pod's status."""

    address: str
    answered_as: object = None


@dataclass(frozen=True)
class Ready:
    """The runtime at ``address`` initialised itself (code in the image)."""

    address: str
    init_seconds: float


@dataclass(frozen=True)
class Generic:
    """The runtime at ``address`` listens and waits for its code (``POST /init``)."""

    address: str


FreshStep = Fail | Probe | Distrust | Wait | Ready | Generic


def fresh_step(
    fn: FunctionRef,
    name: str,
    *,
    pod: Mapping | None,
    seen: bool,
    announced: str | None,
    answer: Answer | None,
    cache_error: str | None = None,
) -> FreshStep:
    """The next step of starting the fresh pod ``name``.

    ``pod`` is the pod as cached (None: not there), ``seen`` whether the cache ever
    showed it, ``announced`` the address of an accepted announce, ``answer`` the last
    ``/readyz`` answer. The pod failing (deleted after it was seen or while being
    deleted, an Init error annotation, a terminated runtime) fails the start. Its address
    is the pod's own, else the announced one; none yet: wait (unless the cache cannot
    list pods: the change would never come). An address not asked yet is probed. The
    runtime's own ``/readyz`` decides, not the kubelet's Ready condition (that waited a
    readiness-probe period more for an answer the router gets itself): ``init_failed``
    fails the start (and is written to the pod), 200 is ready, ``generic`` wants its
    code, anything else is asked again soon. An announced address whose runtime answers
    with another envId (or not at all) is distrusted.
    """
    if (pod is None and seen) or (pod is not None and is_terminating(pod)):
        return Fail(f"{fn}: environment pod {name} was deleted while starting")
    address, via_announce = None, False
    if pod is not None:
        annotated = annotated_init_error(pod)
        if annotated:
            return Fail(init_failed(fn, annotated))
        reason = terminated_reason(pod)
        if reason:
            return Fail(f"{fn}: {reason}")
        address = pod_address(dict(pod))
    if address is None and announced is not None:
        address, via_announce = announced, True
    if address is None:
        return Fail(f"{fn}: {cache_error}") if cache_error else Wait()
    if answer is None or (answer.address, answer.via_announce) != (address, via_announce):
        return Probe(address, via_announce)
    info = answer.info
    if via_announce and info.get("envId") != name:
        return Distrust(address, info.get("envId"))
    error = reported_init_error(fn, info)
    if error:
        return Fail(error, annotate=True)
    if answer.status == 200:
        return Ready(address, init_seconds(info))
    if info.get("state") == "generic":
        return Generic(address)
    return Wait(reprobe=True)


# -- announces -----------------------------------------------------------------------------


def announced_ip(address: str) -> str | None:
    """The IP of an announced ``host:port`` (``[v6]:port`` too), None if malformed."""
    host, colon, port = address.rpartition(":")
    if not colon or not port.isdigit() or not 0 < int(port) < 65536:
        return None
    try:
        return str(ipaddress.ip_address(host.strip("[]")))
    except ValueError:
        return None


def same_ip(a: str, b: str) -> bool:
    """Equal IPs, an IPv4 peer seen as IPv4-mapped IPv6 on a dual-stack socket too."""
    try:
        x, y = ipaddress.ip_address(a), ipaddress.ip_address(b)
    except ValueError:
        return False
    x = getattr(x, "ipv4_mapped", None) or x
    y = getattr(y, "ipv4_mapped", None) or y
    return x == y


def accept_announce(expected_token: str | None, address: str, token: str, peer: str | None) -> bool:
    """Believe an announce: a pod this router is starting (it has an ``expected_token``),
    that token (compared in constant time), a well-formed address, from a connection
    whose peer is the announced IP."""
    ip = announced_ip(address)
    return (
        expected_token is not None
        and ip is not None
        and peer is not None
        and hmac.compare_digest(expected_token.encode(), token.encode())
        and same_ip(ip, peer)
    )


# -- what this router holds ----------------------------------------------------------------


@dataclass
class Pending:
    """A fresh pod this router is starting: its announce token and the accepted address."""

    token: str
    address: str | None = None


class Ownership:
    """Which pods this router holds, and every change of that, by name.

    - ``claimed``: pods claimed (provisioned or generic): never claimed twice;
    - ``held``: env id (= pod name) -> the pod of every environment started or claimed;
    - ``released``: provisioned pods given back, deleted once draining
      (``released_actions``);
    - ``pending``: fresh pods being started, with their announce token;
    - ``serving``: env id -> seen in the cache yet, of every environment handed to a
      pool and not let go: watched for its pod's end (``lost_environments``).

    Transitions are synchronous (no await between a check and its change), so two
    coroutines can never both claim one pod.
    """

    def __init__(self) -> None:
        self.claimed: set[Key] = set()
        self.held: dict[str, PodEnv] = {}
        self.released: set[Key] = set()
        self.pending: dict[str, Pending] = {}
        self.serving: dict[str, bool] = {}

    # claims
    def claim(self, key: Key) -> bool:
        """Take ``key``; False when this router already has it."""
        if key in self.claimed:
            return False
        self.claimed.add(key)
        return True

    def unclaim(self, key: Key) -> None:
        """A claim that did not work out (lost to another writer, not answering): the
        pod may be claimable again later."""
        self.claimed.discard(key)

    # environments
    def hold(self, where: PodEnv) -> None:
        """The pod ``where`` backs an environment of this router (stopped, or deleted at
        close unless provisioned)."""
        self.held[where.name] = where

    def where(self, env_id: str) -> PodEnv | None:
        return self.held.get(env_id)

    def let_go(self, env_id: str) -> PodEnv | None:
        """The environment ``env_id`` ends here (stopped, released, failed to start)."""
        self.serving.pop(env_id, None)
        return self.held.pop(env_id, None)

    def serve(self, env_id: str) -> None:
        """The held environment ``env_id`` was handed to its pool: watch its pod."""
        self.serving[env_id] = False

    def saw(self, env_ids: Iterable[str]) -> None:
        """These serving environments' pods are in the cache (so their absence is news)."""
        for env_id in env_ids:
            if env_id in self.serving:
                self.serving[env_id] = True

    def lost(self, env_id: str) -> None:
        """Its pod ended: reported to the pool once, no longer watched (the pool stops it)."""
        self.serving.pop(env_id, None)

    def give_back(self, where: PodEnv) -> None:
        """A provisioned pod returned to the operator: no longer claimed, remembered as
        released until it is gone or draining."""
        self.held.pop(where.name, None)
        self.serving.pop(where.name, None)
        self.claimed.discard(where.key)
        self.released.add(where.key)

    def forget_released(self, keys: Iterable[Key]) -> None:
        self.released.difference_update(keys)

    def owned(self) -> list[PodEnv]:
        """Held pods that are this router's to delete at close (provisioned pods are
        the operator's)."""
        return [p for p in self.held.values() if p.role != labels.ROLE_PROVISIONED]

    # fresh starts
    def expect(self, name: str, token: str) -> Pending:
        """A fresh pod ``name`` is being started; its runtime may announce with ``token``."""
        pending = self.pending[name] = Pending(token)
        return pending

    def started(self, name: str) -> None:
        """The start of ``name`` ended (either way): announces for it are refused."""
        self.pending.pop(name, None)

    def token_of(self, name: str) -> str | None:
        pending = self.pending.get(name)
        return pending.token if pending is not None else None

    def announce(self, name: str, address: str) -> None:
        if name in self.pending:
            self.pending[name].address = address

    def distrust(self, name: str, address: str) -> None:
        """Forget the announced ``address`` of ``name`` (not a newer one)."""
        pending = self.pending.get(name)
        if pending is not None and pending.address == address:
            pending.address = None

    def clear(self) -> None:
        self.held.clear()
        self.serving.clear()
        self.released.clear()
