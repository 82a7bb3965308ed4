"""``lambdakube logs --follow``: what is new in a log's end since the last look (pure).

The router answers the *end* of each environment's output (a bounded window that moves
and is rotated underneath), not offsets. So the follower keeps the window it printed
last and prints what the new one has past it: the longest suffix of the old window that
is a prefix-aligned part of the new one marks where the new text starts. START/END/REPORT
lines carry unique request ids, so the overlap is found reliably; when none is found
(more output than one window between two looks) the whole new window is new.
"""

from __future__ import annotations

#: The old window's last bytes looked for in the new one.
ANCHOR = 512


def new_text(previous: str, current: str) -> str:
    if not previous:
        return current
    if current == previous:
        return ""
    anchor = previous[-ANCHOR:]
    at = current.rfind(anchor)
    if at >= 0:
        return current[at + len(anchor) :]
    # The window moved past our anchor: find the longest overlap of previous's end with current's start.
    for size in range(min(len(previous), len(current)), 0, -1):
        if current.startswith(previous[-size:]):
            return current[size:]
    return current


def prefixed(env_id: str, text: str) -> list[str]:
    """``kubectl logs --prefix`` style lines, empty ones dropped."""
    return [f"[{env_id}] {line}" for line in text.splitlines() if line.strip()]
