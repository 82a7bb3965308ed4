"""Error shaping shared by Init and Invoke.

Callers see errors as Lambda shows them: ``{"errorType", "errorMessage", "stackTrace"}``
where the stack trace lists only the *user's* frames - the runtime's own frames and the
import / asyncio machinery around them are noise to someone debugging their handler.
"""

from __future__ import annotations

import asyncio
import importlib
import os
import traceback
from types import TracebackType

_INTERNAL_DIRS = (
    os.path.dirname(os.path.abspath(__file__)) + os.sep,
    os.path.dirname(os.path.abspath(asyncio.__file__)) + os.sep,
    os.path.dirname(os.path.abspath(importlib.__file__)) + os.sep,
)


def _internal(filename: str) -> bool:
    return filename.startswith(_INTERNAL_DIRS) or filename.startswith("<frozen importlib")


def format_stack(tb: TracebackType | None) -> list[str]:
    """Lambda-style ``stackTrace``: one ``'  File "...", line N, in f\\n    code\\n'`` per frame."""
    frames = [frame for frame in traceback.extract_tb(tb) if not _internal(frame.filename)]
    return traceback.format_list(frames)


def log_text(error_type: str, message: str, stack: list[str]) -> str:
    """The ``[ERROR]`` block written to the function's log, as Lambda's runtime does."""
    text = f"[ERROR] {error_type}: {message}\n"
    if stack:
        text += "Traceback (most recent call last):\n" + "".join(stack)
    return text if text.endswith("\n") else text + "\n"
