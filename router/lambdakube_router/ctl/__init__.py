"""``lambdakube invoke|get|describe|logs|bench|completion``: daily use of a router.

Why in a package of its own, and stdlib only (plus PyYAML for ``-o yaml``): a command
line tool is started for every call, so it must not import aiohttp, pydantic or the
router's machinery; it talks to a router over HTTP only, the same way against
``make dev`` and a cluster. Pure parts (``config``, ``render``, ``exits``, ``tail``,
``stats``) are tested as tables; ``http`` and ``commands`` are the thin drivers.
"""
