"""Fixtures shared with other layers: the real runtime process (tests/runtime)."""

from tests.runtime.conftest import start_runtime  # noqa: F401 - re-exported fixture
