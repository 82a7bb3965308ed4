"""The router's address and the caller's token from the kubeconfig, as kubectl reads it.

Why kubectl and not our own reader: a kubeconfig is YAML merged from ``$KUBECONFIG``'s
files, with a current context, overrides and credential plugins; ``kubectl config view
--minify --raw -o json`` resolves all of that into one JSON document, and the CLI stays
stdlib-only (no YAML parser to import). A user with a cluster has kubectl; a ``make dev``
user without one loses nothing (the defaults apply).

Where the router is cannot be read from a plain kubeconfig, so the context carries it in
a kubeconfig *extension* (kubeconfig's own field for tools' data), named
``lambdakube.dev``::

    contexts:
    - name: prod
      context:
        cluster: prod
        user: me
        namespace: team-a
        extensions:
        - name: lambdakube.dev
          extension:
            router: https://lambdakube.example.com   # the router's URL
            serviceAccount: team-a/cli                # optional: whose token to use

The router takes tokens for its own audience only (``lambdakube``), never the API
server's: with ``serviceAccount`` the CLI asks for one with the kubeconfig's own
credentials (``kubectl create token SA --audience lambdakube``, the TokenRequest API;
RBAC decides whether this user may). The context's namespace is the default namespace,
but only for a router found here: a ``make dev`` router is not the cluster's.
"""

from __future__ import annotations

import json
import subprocess
from dataclasses import dataclass
from typing import Any

EXTENSION = "lambdakube.dev"
#: kubectl answers a local file read in milliseconds; a hung credential plugin must not
#: hang the CLI.
KUBECTL_TIMEOUT = 30.0
TOKEN_DURATION = "1h"


class KubeconfigError(Exception):
    """The kubeconfig was asked for (``--context``/``--kubeconfig``) or names a router, but
    cannot be used: the message says why (a usage error, exit 2)."""


@dataclass(frozen=True)
class Selection:
    """Which kubeconfig and context: the flags, else kubectl's own defaults."""

    kubectl: str = "kubectl"
    kubeconfig: str | None = None
    context: str | None = None

    @property
    def explicit(self) -> bool:
        return self.kubeconfig is not None or self.context is not None

    def argv(self, *args: str) -> list[str]:
        flags = [f"--kubeconfig={self.kubeconfig}"] if self.kubeconfig else []
        flags += [f"--context={self.context}"] if self.context else []
        return [self.kubectl, *flags, *args]


@dataclass(frozen=True)
class Found:
    """What the current context says: ``router`` None when it names none."""

    context: str
    router: str | None
    namespace: str | None
    service_account: tuple[str, str] | None  # (namespace, name)


def read_view(view: dict[str, Any]) -> Found | None:
    """The current context of a minified view (one context); None: there is none.

    Raises KubeconfigError for an extension that is there but malformed: a user who wrote
    one meant it, and a silently ignored typo would send calls to ``make dev``'s router."""
    contexts = view.get("contexts") or []
    current = view.get("current-context") or ""
    entry = next((c for c in contexts if c.get("name") == current), None)
    if entry is None:
        return None
    context = entry.get("context") or {}
    namespace = context.get("namespace") or None
    ext = next((e.get("extension") for e in context.get("extensions") or [] if e.get("name") == EXTENSION), None)
    if ext is None:
        return Found(current, None, namespace, None)
    where = f"context {current!r}, extension {EXTENSION}"
    if not isinstance(ext, dict):
        raise KubeconfigError(f"{where}: must be an object with 'router' (and optionally 'serviceAccount')")
    unknown = sorted(set(ext) - {"router", "serviceAccount"})
    if unknown:
        raise KubeconfigError(f"{where}: unknown field(s) {', '.join(unknown)} (known: router, serviceAccount)")
    router = ext.get("router")
    if not isinstance(router, str) or not router.startswith(("http://", "https://")):
        raise KubeconfigError(f"{where}: 'router' must be an http(s) URL, got {router!r}")
    return Found(current, router.rstrip("/"), namespace, _service_account(ext.get("serviceAccount"), namespace, where))


def _service_account(value: Any, namespace: str | None, where: str) -> tuple[str, str] | None:
    if value is None:
        return None
    if not isinstance(value, str) or not value or value.count("/") > 1:
        raise KubeconfigError(f"{where}: 'serviceAccount' must be 'name' or 'namespace/name', got {value!r}")
    ns, _, name = value.rpartition("/")
    if not name or (value.count("/") == 1 and not ns):
        raise KubeconfigError(f"{where}: 'serviceAccount' must be 'name' or 'namespace/name', got {value!r}")
    return (ns or namespace or "default", name)


def token_argv(selection: Selection, service_account: tuple[str, str]) -> list[str]:
    # Imported here: the models behind it cost the other commands' start (0.1 s in all).
    from lambdakube.resources.identity import AUDIENCE

    ns, name = service_account
    return selection.argv(
        "create", "token", name, "-n", ns, f"--audience={AUDIENCE}", f"--duration={TOKEN_DURATION}"
    )  # fmt: skip


# -- the driver: kubectl ------------------------------------------------------------------


def _kubectl(argv: list[str]) -> subprocess.CompletedProcess[str] | None:
    """None: kubectl is not there (only an error when the kubeconfig was asked for)."""
    try:
        return subprocess.run(argv, capture_output=True, text=True, timeout=KUBECTL_TIMEOUT, check=False)
    except FileNotFoundError:
        return None
    except subprocess.TimeoutExpired:
        raise KubeconfigError(f"{' '.join(argv[:3])} …: no answer within {KUBECTL_TIMEOUT:g} s") from None


def lookup(selection: Selection) -> Found | None:
    """The current context, read through kubectl; None when there is no kubeconfig (or
    no kubectl) and none was asked for."""
    done = _kubectl(selection.argv("config", "view", "--minify", "--raw", "-o", "json"))
    if done is None:
        if selection.explicit:
            raise KubeconfigError(f"--context/--kubeconfig need kubectl: {selection.kubectl!r} was not found")
        return None
    if done.returncode != 0:
        if selection.explicit:
            raise KubeconfigError(f"kubectl config view: {done.stderr.strip() or f'exit {done.returncode}'}")
        return None  # no kubeconfig at all, or no current context: make dev's defaults
    try:
        view = json.loads(done.stdout or "{}")
    except ValueError:
        raise KubeconfigError("kubectl config view printed no JSON") from None
    return read_view(view)


def token(selection: Selection, found: Found) -> str | None:
    """A token for the router's audience, when the context names a ServiceAccount."""
    if found.service_account is None:
        return None
    argv = token_argv(selection, found.service_account)
    done = _kubectl(argv)
    if done is None:
        raise KubeconfigError(f"{selection.kubectl!r} was not found (needed for the token of {EXTENSION})")
    if done.returncode != 0:
        ns, name = found.service_account
        raise KubeconfigError(f"a token for ServiceAccount {ns}/{name}: {done.stderr.strip()}")
    return done.stdout.strip() or None
