"""Secret and ConfigMap references on the local backend: files in ``--secrets-dir`` and
``--configmaps-dir``, in the layout of a mounted Secret volume.

Why files: ``lambdakube dev`` has no API server to read a Secret from, and a directory
per object with one file per key is exactly what a pod sees when it mounts a Secret or
ConfigMap (``kubectl create secret generic db --from-file=DIR/default/db`` makes the
object from it). So ``DIR/<namespace>/<name>/<key>`` holds a key's value, as-is (no
newline stripped: a mounted volume keeps one too).

What it resolves, as the kubelet does for a Pod: ``envFrom`` first, in order (a later
source wins; every regular file whose name is a valid variable name, the rest skipped as
the kubelet skips invalid keys, ``LAMBDAKUBE_*`` too, as ``own_variables`` drops them),
then ``envValueFrom`` over them (the literal ``env`` wins over both; the two can't clash).
``optional`` references to a missing object or key set nothing.

Where values go: only into the environment process's variables at spawn
(``LocalBackend``). Never into ``POST /init``, the router's log or an error message:
errors name the variable, the object, the key and the directory, never what a file
holds. Resolved twice: at deploy time (``problems``: an unresolvable, non-optional
reference makes the manifest invalid, reported as any invalid manifest is) and at each
spawn (``resolve``: a file that vanished since is a clear start error, not a hang).
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

from lambdakube.models import (
    ENV_NAME_PATTERN,
    RESERVED_ENV_PREFIX,
    EnvFromSource,
    EnvVarSource,
    FunctionSpec,
    KeySelector,
    ObjectSelector,
)

_ENV_NAME = re.compile(ENV_NAME_PATTERN)
SECRET, CONFIG_MAP = "secret", "configmap"
_FLAG = {SECRET: "--secrets-dir", CONFIG_MAP: "--configmaps-dir"}


class UnresolvedReference(Exception):
    """A non-optional reference that no file answers (the message holds no value)."""


@dataclass(frozen=True)
class ObjectDirs:
    """Where Secrets and ConfigMaps are read from (None: not given; only optional
    references of that kind can then be used)."""

    secrets: Path | None = None
    config_maps: Path | None = None

    @property
    def configured(self) -> bool:
        return self.secrets is not None or self.config_maps is not None

    def resolve(self, namespace: str, spec: FunctionSpec) -> dict[str, str]:
        """The referenced variables of ``spec`` in ``namespace``, ``envFrom`` first and
        ``envValueFrom`` over them; raises UnresolvedReference on the first failure."""
        out: dict[str, str] = {}
        for index, src in enumerate(spec.env_from):
            out.update(self._source(namespace, index, src))
        for name, source in sorted(spec.env_value_from.items()):
            value = self._value(namespace, name, source)
            if value is not None:
                out[name] = value
        return out

    def problems(self, namespace: str, spec: FunctionSpec) -> list[str]:
        """Why each of ``spec``'s references cannot be resolved (empty: they all can).
        Reads the files (to know they are readable) and forgets what they hold."""
        out = []
        for index, src in enumerate(spec.env_from):
            try:
                self._source(namespace, index, src)
            except UnresolvedReference as exc:
                out.append(str(exc))
        for name, source in sorted(spec.env_value_from.items()):
            try:
                self._value(namespace, name, source)
            except UnresolvedReference as exc:
                out.append(str(exc))
        return out

    def _source(self, namespace: str, index: int, src: EnvFromSource) -> dict[str, str]:
        kind, ref = (SECRET, src.secret_ref) if src.secret_ref is not None else (CONFIG_MAP, src.config_map_ref)
        assert ref is not None  # the model has exactly one
        return self._whole(f"envFrom[{index}]", namespace, kind, ref, src.prefix or "")

    def _value(self, namespace: str, name: str, source: EnvVarSource) -> str | None:
        if source.secret_key_ref is not None:
            return self._key(f"env {name}", namespace, SECRET, source.secret_key_ref)
        assert source.config_map_key_ref is not None  # the model has exactly one
        return self._key(f"env {name}", namespace, CONFIG_MAP, source.config_map_key_ref)

    def _dir(self, kind: str) -> Path | None:
        return self.secrets if kind == SECRET else self.config_maps

    def _key(self, what: str, namespace: str, kind: str, ref: KeySelector) -> str | None:
        root = self._dir(kind)
        if root is None:
            if ref.optional:
                return None
            raise UnresolvedReference(f'{what}: {kind} "{ref.name}" key "{ref.key}": no {_FLAG[kind]} given')
        obj = root / namespace / ref.name
        path = obj / ref.key
        if not path.is_file():
            if ref.optional:
                return None
            missing = f'key "{ref.key}" not found in {obj}' if obj.is_dir() else f"not found in {root / namespace}"
            raise UnresolvedReference(f'{what}: {kind} "{ref.name}" {missing}')
        return _read(what, kind, ref.name, path)

    def _whole(self, what: str, namespace: str, kind: str, ref: ObjectSelector, prefix: str) -> dict[str, str]:
        root = self._dir(kind)
        if root is None:
            if ref.optional:
                return {}
            raise UnresolvedReference(f'{what}: {kind} "{ref.name}": no {_FLAG[kind]} given')
        obj = root / namespace / ref.name
        try:
            entries = sorted(os.scandir(obj), key=lambda e: e.name)
        except (FileNotFoundError, NotADirectoryError):
            if ref.optional:
                return {}
            raise UnresolvedReference(f'{what}: {kind} "{ref.name}" not found in {root / namespace}') from None
        except OSError as exc:
            raise UnresolvedReference(f'{what}: {kind} "{ref.name}": cannot list {obj}: {exc.strerror}') from None
        out = {}
        for entry in entries:
            name = prefix + entry.name
            # a mounted volume's ``..data`` and friends are no valid names: skipped too
            if not _ENV_NAME.match(name) or name.startswith(RESERVED_ENV_PREFIX) or not entry.is_file():
                continue
            out[name] = _read(what, kind, ref.name, Path(entry.path))
        return out


def _read(what: str, kind: str, name: str, path: Path) -> str:
    try:
        value = path.read_bytes().decode()
    except UnicodeDecodeError:
        raise UnresolvedReference(f'{what}: {kind} "{name}": {path} is not UTF-8 text') from None
    except OSError as exc:
        raise UnresolvedReference(f'{what}: {kind} "{name}": cannot read {path}: {exc.strerror}') from None
    if "\0" in value:  # no environment string can hold one
        raise UnresolvedReference(f'{what}: {kind} "{name}": {path} contains a NUL byte')
    return value
