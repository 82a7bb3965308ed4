"""The one contract between the mapping manager and a source kind (a queue, Kafka).

Why one module: the manager (``pollers.manager``) knows mappings, their state and the
router's Engine; a source kind knows how to read its records and what its event looks
like. Everything one needs of the other is here, written once, so a new source kind
(``pollers.kafka``, built on another branch) plugs in without touching the manager.

How a source kind is written:

* A class with ``KIND`` (the ``EventSourceMappingSpec.source_kind`` it reads) and
  ``__init__(self, ctx: PollerContext)``; ``async run()`` reads and invokes until it is
  cancelled (the manager cancels it when the mapping changes, is disabled or deleted,
  and starts a new one with the new spec). ``run`` must not return while it should
  still poll; when it cannot go on it raises:

  - ``SourceFailed(message)``: a problem the spec must change to fix (an unknown topic,
    a refused consumer group): the mapping goes ``Failed`` with that message and its
    poller is not restarted until the spec changes;
  - anything else: logged, ``lastProcessingResult`` becomes ``PROBLEM: <error>``, and
    the manager starts it again after a growing pause (``lambdakube.backoff``).

* Optionally ``stop()`` (not async): stop reading, let the batches in flight finish,
  then return from ``run``. The manager calls it when the mapping changes, is disabled
  or deleted (Lambda lets in-flight batches finish), and cancels a poller without it;
  the router's shutdown always cancels.
* It invokes only through ``ctx.invoke_function(payload)`` (the router's
  ``Engine.invoke`` for the mapping's function and qualifier), so reserved
  concurrency, the namespace quota and the function's metrics apply; it never runs
  more invocations at once than ``ctx.max_concurrency()`` (that already includes the
  function's own cap). A ``THROTTLED`` result is not a function error: the batch is
  retried later without spending its retries.
* It reports through ``ctx.status`` (``StatusSink``): ``started()`` once it reads (the
  state becomes ``Enabled``), ``lag(n)`` with what waits in the source,
  ``processed(result)`` with Lambda's ``LastProcessingResult`` words after each batch
  (``OK``, ``No records processed``, ``PROBLEM: Function call failed``,
  ``PROBLEM: Function call throttled``, ...). The manager writes them into the
  mapping's status (a status patch on a cluster), coalesced: calling them per batch
  is cheap.
* Counts go to ``ctx.metrics`` (``PollerMetrics``; labelled by the mapping already).
* A record whose retries or age are spent goes to ``ctx.send_on_failure(record)``
  (``destinationConfig.onFailure``: a queue message or an async invoke of a
  function; False when the mapping has none, and the record is dropped).
* Shared pure rules: ``pollers.filters.matches`` (``filterCriteria``),
  ``pollers.batching`` (batch window, partial batch responses).

The registry (``SOURCES``) names each kind's class by module path and imports it only
when a mapping of that kind exists (``poller_class``): a router without the Kafka
client never imports it, and a kind whose module is missing leaves its mappings
``Failed`` with ``SourceUnavailable``'s message instead of stopping the router.
"""

from __future__ import annotations

import importlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from lambdakube.resources.identity import REGION
from lambdakube.models import KAFKA_SOURCE, QUEUE_SOURCE, EventSourceMappingSpec

if TYPE_CHECKING:
    from lambdakube_router.invocations import InvokeResult

#: ``Engine.invoke``'s shape: ``invoke(namespace, name, payload, *, qualifier=None, ...)``.
InvokeFn = Callable[..., Awaitable["InvokeResult"]]

#: Lambda's ``LastProcessingResult`` words.
OK = "OK"
NO_RECORDS = "No records processed"
FUNCTION_FAILED = "PROBLEM: Function call failed"
THROTTLED = "PROBLEM: Function call throttled"
FUNCTION_NOT_FOUND = "PROBLEM: Function not found"
ITEM_FAILURES = "PROBLEM: Function reported batch item failures"


class SourceFailed(Exception):
    """The source cannot be read as the spec says: the mapping is ``Failed`` until changed."""


class SourceUnavailable(SourceFailed):
    """This router has no poller for the mapping's source kind (its module is missing)."""


class StatusSink(Protocol):
    """Where a poller reports; the manager turns it into ``status`` (coalesced)."""

    def started(self) -> None:
        """The poller reads its source: the mapping is ``Enabled``."""

    def lag(self, records: int) -> None:
        """Records waiting in the source now (a queue's visible messages, Kafka's lag)."""

    def processed(self, result: str) -> None:
        """Lambda's ``LastProcessingResult`` of the last batch (``OK``, ``PROBLEM: ...``)."""


class PollerMetrics(Protocol):
    """The mapping's counters and gauges (``metrics.EventSourceMetrics``)."""

    def batch(self, result: str) -> None:
        """One invocation of a batch, by the Engine's result (``success``, ``throttled``...)."""

    def records(self, n: int) -> None:
        """Records delivered to the function (in batches that were invoked)."""

    def failures(self, n: int) -> None:
        """Records that failed (function error, a partial batch failure, onFailure)."""

    def filtered(self, n: int) -> None:
        """Records dropped by ``filterCriteria``."""

    def lag(self, n: int) -> None:
        """Records waiting in the source."""

    def poller_started(self) -> None: ...

    def poller_stopped(self) -> None: ...


@dataclass
class PollerContext:
    """Everything a source poller gets from the manager."""

    namespace: str
    #: The EventSourceMapping's name.
    name: str
    spec: EventSourceMappingSpec
    invoke: InvokeFn
    #: Monotonic seconds (timers, batching windows) and wall seconds (record timestamps,
    #: ages): a test's fake clocks decide both.
    clock: Callable[[], float]
    wall_clock: Callable[[], float]
    status: StatusSink
    metrics: PollerMetrics
    #: The most invocations at once right now: ``scalingConfig.maximumConcurrency``
    #: and the function's reserved/max concurrency (it may change while running).
    max_concurrency: Callable[[], int]
    #: ``destinationConfig.onFailure``: send one record (the source's own JSON shape,
    #: with Lambda's failure context); False when the mapping has no destination.
    send_on_failure: Callable[[dict], Awaitable[bool]]
    #: The router's durable store (``asyncq.store.AsyncStore``): the queue source's
    #: queues. Other kinds ignore it.
    store: Any = None
    #: Wakes the async dispatcher after a poller wrote an async event (an ``onFailure``
    #: function destination written together with a queue delete).
    wake_async: Callable[[], None] = lambda: None
    #: ``awsRegion`` of the records (the region the router's functions see).
    region: str = REGION

    @property
    def function(self) -> str:
        return self.spec.function

    @property
    def qualifier(self) -> str | None:
        return self.spec.qualifier

    async def invoke_function(self, payload: bytes) -> InvokeResult:
        """Invoke the mapping's function (and qualifier) through the Engine."""
        return await self.invoke(self.namespace, self.spec.function, payload, qualifier=self.spec.qualifier)


@runtime_checkable
class SourcePoller(Protocol):
    """One mapping's poller (see the module docstring for the rules)."""

    KIND: str

    def __init__(self, ctx: PollerContext) -> None: ...

    async def run(self) -> None: ...


#: Source kind -> "module:Class", imported on first use.
SOURCES: dict[str, str] = {
    QUEUE_SOURCE: "lambdakube_router.pollers.queue:QueuePoller",
    KAFKA_SOURCE: "lambdakube_router.pollers.kafka:KafkaPoller",
}


def poller_class(kind: str) -> type[SourcePoller]:
    """The poller class of ``kind``; ``SourceUnavailable`` (with a message for the
    mapping's status) when there is none or its module cannot be imported."""
    target = SOURCES.get(kind)
    if target is None:
        raise SourceUnavailable(f"no poller for source kind {kind!r} (known: {', '.join(sorted(SOURCES))})")
    module_name, _, class_name = target.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise SourceUnavailable(
            f"this router cannot poll {kind} sources: {module_name} is not available ({exc})"
        ) from None
    cls = getattr(module, class_name, None)
    if cls is None:
        raise SourceUnavailable(f"this router cannot poll {kind} sources: {target} is missing")
    return cls
