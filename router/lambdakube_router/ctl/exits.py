"""Exit codes, as a pure rule of an answer: scripts branch on them.

========  =====================================================================
code      when
========  =====================================================================
0         the call did what was asked (a result, an accepted event, a dry run)
1         the function failed (``X-Amz-Function-Error``), or any other error:
          not found, refused (401/403), the router unreachable, 5xx
2         usage: a bad flag or argument, a payload that is not JSON (argparse's own)
3         throttled (429 TooManyRequestsException): retrying later can succeed
========  =====================================================================
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

OK = 0
ERROR = 1
USAGE = 2
THROTTLED = 3


def of_answer(status: int | None, headers: Mapping[str, str]) -> int:
    """``status`` None: no answer at all (connection refused, timeout)."""
    if status is None:
        return ERROR
    if status == 429:
        return THROTTLED
    if status >= 400:
        return ERROR
    if any(k.lower() == "x-amz-function-error" for k in headers):
        return ERROR
    return OK


def worst(codes: Iterable[int]) -> int:
    """Many calls (``bench``): an error wins over a throttle, a throttle over success."""
    seen = set(codes)
    for code in (ERROR, THROTTLED):
        if code in seen:
            return code
    return OK
