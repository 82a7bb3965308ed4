"""lambdakube router: the hot path of Lambda-style invocations (see DESIGN.md).

It admits requests against namespace/function concurrency limits, leases one execution
environment per request from a per-function pool, forwards the event to the runtime in
that environment, and keeps async (``Event``) invocations in a durable SQLite queue.
It must not import the operator package: the two meet only through the API models in
``lambdakube.models``.
"""

__all__ = ["__version__"]
__version__ = "0.1.0"
