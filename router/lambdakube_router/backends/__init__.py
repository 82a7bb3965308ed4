"""Where execution environments come from: local processes or Kubernetes pods."""

from lambdakube_router.backends.base import (
    Backend,
    EnvironmentHandle,
    EnvironmentStartError,
    FunctionRef,
)

__all__ = ["Backend", "EnvironmentHandle", "EnvironmentStartError", "FunctionRef"]
