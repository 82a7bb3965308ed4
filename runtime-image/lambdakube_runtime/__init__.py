"""lambdakube's Python runtime: the process inside every function pod (an execution
environment). It serves a tiny HTTP API (``/healthz``, ``/readyz``, ``/init``,
``/invoke``) to the lambdakube router and runs one invocation at a time.

Standard library only, on purpose: it is on the cold-start path of every function, so it
must import fast, and the runtime image should be little more than ``python:3.11-slim``.
See ``runtime-image/README.md`` for the wire contract.
"""

__version__ = "0.1.0"
