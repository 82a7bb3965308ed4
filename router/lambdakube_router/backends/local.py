"""Environments as local processes: ``python -m lambdakube_runtime`` on 127.0.0.1.

Why this backend exists: it is the embedded default (``lambdakube dev``, the README, the
router's integration tests). An environment is exactly what a pod would run, minus the
pod: the same runtime, started the same way (the function's own variables, no function),
given its code in the same ``POST /init`` (``lambdakube.resources.code``).

Start sequence: spawn with ``--port 0`` (on a spawn thread, ``child``), read the
``LAMBDAKUBE_LISTENING port=N`` line from the runtime's ready pipe (``LAMBDAKUBE_READY_FD``;
its end before the line is a runtime that died before listening, and ``listen_timeout``
bounds a runtime that never does), then ``POST /init``: 200 is ready, 500 is the
function's Init error (EnvironmentStartError carrying the runtime's error), a dropped
connection is a process that died during Init (its exit code and output go into the
error).

What a fresh start costs, and where it went (issue: 206–237 ms p50 on a 2-CPU machine):
the interpreter runs isolated (``-I -S``: no ``site``, no ``.pth`` import hooks, an
explicit ``sys.path``; ``runtime_command``) unless the function's variables configure
the interpreter (``PYTHON*``), it imports the runtime from a copy compiled once
(``runtime_copy``) instead of compiling it on every start, and the router is woken by
the ready pipe instead of polling the log file with backoffs. ``bench/cold_start.py``
measures it against a bare interpreter's start in the same run.

Why the output goes to a file, not a pipe: the runtime writes Lambda's START/END/REPORT
lines for every invocation; through a pipe, the router's event loop would wake up to
drain them on every request (measured: a visible share of the router's CPU per invoke).
A log file per environment (``<log dir>/<env id>.log``) costs the router nothing on the
hot path, is readable while debugging ``lambdakube dev``, and its tail goes into start
errors. It is removed when the environment stops.

Bounded log files: an environment lives as long as it is used, and each invocation
adds its START/END/REPORT lines (about 260 bytes) plus the function's output, so the
file is rotated: every ``log_check_interval`` seconds (1 s) a worker thread stats the
live environments' files, and one over ``log_limit`` bytes (1 MiB) has its last
``log_limit`` bytes copied to ``<env id>.log.1`` (replacing the previous one) and is
truncated to zero, as logrotate's ``copytruncate`` (the runtime keeps its stdout). The
runtime's stdout is opened ``O_APPEND``, so after the truncation its next write lands at
the start of the file, not at its old offset (which would leave a hole the size of the
old file). An environment's log therefore takes at most about ``2 * log_limit`` plus
what it writes in one interval; output written in the instant between the copy and the
truncation can be lost (``copytruncate``'s known window). ``LocalProcess.tail`` reads
across the two files, so start errors and an environment's exit diagnostics keep the
last output after a rotation. The Tail log (``X-Amz-Log-Result``) does not come from
this file: the runtime keeps each invocation's last 4 KB itself (``capture``).

Temporary files: each environment gets its own ``TMPDIR`` (``<env id>.tmp`` in the
backend's work directory, which also holds the log files unless ``log_dir`` is given).
The runtime cleans up its own temporary files on a normal exit, but not when it has to be
killed (SIGKILL after ``stop_grace``, a crash): the backend removes the environment's
directory whenever it stops one, and the whole work directory on ``close``. The router
gives the backend ``<state dir>/environments`` (``work_dir``): the state directory's lock
makes it this router's alone, so whatever is in it when the backend starts was left by a
router that did not get to ``close`` (a kill -9) and is removed first. Without
``work_dir`` it is a new private ``lambdakube-envs-*``. A ``TMPDIR`` in ``extra_env`` or
the function's ``spec.env`` wins (then it is not cleaned up here).

Dying together: every runtime gets the read end of one pipe whose write end only the
router holds (``lambdakube_runtime.parent``): when the router process is gone, however
it ended, each runtime sees the pipe's end and exits, instead of living on reparented to
init.

An environment that dies by itself (its process exits while idle: a crash, an
``os._exit`` in a background thread, a kill from outside) is noticed when its process
ends, not at the next request: the backend reports it (``Backend.lost_listener``) and
the pool retires it (``EnvLost``), so no request is handed a dead environment.

Pre-warmed generic environments (``generic_pool_size`` > 0, see ``generic_pool``): the
backend keeps that many runtimes started *without* a function. ``start`` for an
on-demand cold start takes one and specialises it with ``POST /init`` (the function's
code, config and ``spec.env``); the environment keeps the id it was spawned with (the
runtime reports it as ``X-Env-Id`` and in ``context.log_stream_name``), so the handle
carries that id and the pool adopts it. Fresh processes (today's path) are still used
when the pool is empty, when a spare turns out to be unusable, for provisioned
environments (started off the request path anyway; they should not drain the spares
that on-demand cold starts need), and for functions whose ``spec.env`` sets variables
read at process start (``PYTHON*``, ``LD_*``, ``LAMBDAKUBE_*``, ...): those only take
effect in a new process, and for functions with Secret or ConfigMap references
(``envValueFrom``/``envFrom``): their values are read from ``objects`` (``secrets_dir``)
into the new process's variables at spawn, and never sent in ``POST /init``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import shutil
import signal
import subprocess
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import aiohttp

from lambdakube.models import FunctionSpec
from lambdakube.resources import identity
from lambdakube.resources import init_body as resources_init_body
from lambdakube.resources import env_token, labels, new_env_id
from lambdakube.resources.code import init_error_message, needs_fresh_process, own_variables, runtime_answer
from lambdakube_router.backends.base import (
    SOURCE_FRESH,
    SOURCE_GENERIC,
    Backend,
    EnvironmentHandle,
    EnvironmentStartError,
    FunctionRef,
)
from lambdakube_router.backends import runtime_copy
from lambdakube_router.backends.child import Child
from lambdakube_router.backends.secrets_dir import ObjectDirs, UnresolvedReference
from lambdakube_router.generic_pool import GenericPool
from lambdakube_runtime import parent as runtime_parent

log = logging.getLogger(__name__)

LISTENING_PREFIX = runtime_parent.LISTENING_PREFIX.encode()
#: /init waits for the function's Init; the pool's init timeout bounds it (cancellation).
_INIT_TIMEOUT = aiohttp.ClientTimeout(total=None, sock_connect=2)
#: Threads that run ``Popen`` (fork, exec, and the wait for exec): a few, so a storm of
#: cold starts queues there instead of on the event loop.
SPAWN_THREADS = 4
#: How long a runtime that exited (or closed its ready pipe) before listening is given
#: to be reaped, for its exit code in the error.
_EXIT_WAIT_SECONDS = 2.0
#: An environment's log file is rotated past this size (see "Bounded log files").
LOG_LIMIT_BYTES = 1 << 20
#: How often the log files' sizes are checked, in seconds.
LOG_CHECK_INTERVAL_SECONDS = 1.0


def rotated_path(log_path: Path) -> Path:
    """Where the previous part of an environment's log goes (``<env id>.log.1``)."""
    return log_path.with_name(log_path.name + ".1")


def rotate_log(log_path: Path, limit: int) -> bool:
    """When ``log_path`` is over ``limit`` bytes: its last ``limit`` bytes replace
    ``<log>.1`` and it is truncated (``copytruncate``; the writer must have it open
    ``O_APPEND``). True when it was rotated. Blocking: run on a worker thread."""
    try:
        with open(log_path, "rb") as f:
            size = os.fstat(f.fileno()).st_size
            if size <= limit:
                return False
            f.seek(size - limit)
            kept = f.read(limit)
            previous = rotated_path(log_path)
            with open(previous, "wb") as out:
                out.write(kept)
                out.write(f.read())  # what came since (the window before the truncation)
            os.truncate(log_path, 0)
    except FileNotFoundError:  # the environment stopped meanwhile
        return False
    return True


def runtime_command(python: str, runtime_dir: Path | None, site_dirs: list[str], *, isolated: bool) -> list[str]:
    """The command line of one environment (``--port 0``: the runtime picks a port).

    ``isolated`` (the default for every environment whose variables don't configure
    the interpreter): ``-I -S`` skips the ``site`` module, its ``.pth`` files (the
    editable install's import hook alone was 19 ms of every start) and every
    ``PYTHON*`` variable, so the path is given explicitly: the runtime's directory
    first, then ``site_dirs`` (the router interpreter's site-packages, without running
    their ``.pth`` files: a function still imports what is installed there). ``-B -u``
    stand for the ``PYTHONDONTWRITEBYTECODE``/``PYTHONUNBUFFERED`` the environment still
    has for its own subprocesses. Otherwise: ``python -m lambdakube_runtime``, with the
    path in ``PYTHONPATH`` and the variables as the function set them."""
    args = ["--host", "127.0.0.1", "--port", "0"]
    if not isolated:
        return [python, "-m", "lambdakube_runtime", *args]
    path = [str(runtime_dir)] if runtime_dir is not None else []
    boot = (
        f"import sys; sys.path[:0] = {path!r}; sys.path += {site_dirs!r}; "
        "from lambdakube_runtime.__main__ import main; main()"
    )
    return [python, "-I", "-S", "-B", "-u", "-c", boot, *args]


def configures_interpreter(variables: dict[str, str]) -> bool:
    """True when ``variables`` set something the interpreter reads at start
    (``PYTHON*``): an isolated (``-I``) interpreter would ignore it."""
    return any(name.startswith("PYTHON") for name in variables)


def site_packages(python: str) -> list[str]:
    """The site-packages directories ``python`` would add (only known for the router's
    own interpreter; another one gets none under ``-S``)."""
    if os.path.realpath(python) != os.path.realpath(sys.executable):
        return []
    import site  # noqa: PLC0415

    return [d for d in site.getsitepackages() if os.path.isdir(d)]


def init_body(fn: FunctionRef, spec: FunctionSpec, endpoint: str | None = None) -> dict:
    """The runtime's ``POST /init`` body (the one builder: ``lambdakube.resources.code``),
    with the router's endpoint variables under the function's own (``identity.local_env``)."""
    body = resources_init_body(fn.name, fn.namespace, spec, fn.version)
    body["env"] = {**identity.local_env(endpoint, spec), **body["env"]}
    return body


def process_variables(
    fn: FunctionRef,
    spec: FunctionSpec,
    env_id: str,
    referenced: dict[str, str] | None = None,
    endpoint: str | None = None,
) -> dict[str, str]:
    """What a fresh process of ``fn`` starts with, as its pod would: the function's own
    variables (``referenced``: those of its Secret/ConfigMap references, resolved by
    ``secrets_dir``; the literal ``env`` wins over ``envFrom``'s, as in a Pod), its env
    id and namespace - not the function itself, which comes in ``POST /init``
    (``LAMBDAKUBE_INLINE_CODE`` could not carry a source over 128 KiB: Linux caps one
    environment string there, and exec failed)."""
    return {
        **identity.local_env(endpoint, spec),
        **(referenced or {}),
        **own_variables(spec),
        "LAMBDAKUBE_ENV_ID": env_id,
        "LAMBDAKUBE_NAMESPACE": fn.namespace,
    }


@dataclass
class LocalProcess:
    proc: Child
    env_id: str
    log_path: Path
    address: str = ""  # host:port once listening
    source: str = SOURCE_FRESH
    #: The environment's TMPDIR (removed when it stops).
    tmp_dir: Path | None = None
    #: Its ``env_token``: every request to it but the probes carries it.
    token: str = ""

    @property
    def auth(self) -> dict[str, str]:
        return {env_token.HEADER: self.token}

    def alive(self) -> bool:
        return self.proc.returncode is None

    def tail(self, limit: int = 4096) -> str:
        """The last ``limit`` bytes of the output, across a rotation (``<log>.1`` first)."""
        data = _read_end(self.log_path, limit)
        if len(data) < limit:
            data = _read_end(rotated_path(self.log_path), limit - len(data)) + data
        lines = [
            line
            for line in data.decode(errors="replace").splitlines()
            if not line.startswith(runtime_parent.LISTENING_PREFIX)
        ]
        return "\n".join(lines).strip()


def _read_end(path: Path, limit: int) -> bytes:
    try:
        with open(path, "rb") as f:
            f.seek(0, os.SEEK_END)
            f.seek(max(0, f.tell() - limit))
            return f.read(limit)
    except OSError:
        return b""


class LocalBackend(Backend):
    runs_versions = True  # every environment gets its version in POST /init

    def __init__(
        self,
        *,
        python: str = sys.executable,
        stop_grace: float = 2.0,
        extra_env: dict[str, str] | None = None,
        session: aiohttp.ClientSession | None = None,
        log_dir: str | Path | None = None,
        work_dir: str | Path | None = None,
        generic_pool_size: int = 0,
        generic_refill_delay: float = 0.05,
        listen_timeout: float = 30.0,
        max_starting: int | None = None,
        bytecode_cache: str | Path | None = runtime_copy.default_cache_root(),
        log_limit: int = LOG_LIMIT_BYTES,
        log_check_interval: float = LOG_CHECK_INTERVAL_SECONDS,
        objects: ObjectDirs | None = None,
    ) -> None:
        self.python = python
        #: The router's own URL, given to every environment as ``AWS_ENDPOINT_URL_LAMBDA``
        #: (with a region and placeholder keys) so a handler calls other functions with a
        #: stock SDK, as on a cluster; set once the router listens (None: not given).
        self.function_endpoint: str | None = None
        #: Where Secret and ConfigMap references are read (``secrets_dir``).
        self.objects = objects or ObjectDirs()
        #: Each environment's log file is rotated past this many bytes (module docstring).
        self.log_limit = log_limit
        self.log_check_interval = log_check_interval
        self._log_rotator: asyncio.Task | None = None
        #: A started runtime must report its port within this time (the pool's init
        #: timeout does not bound provisioned and generic starts).
        self.listen_timeout = listen_timeout
        #: Where the runtime's compiled copy lives (``runtime_copy``); None: from source.
        self._bytecode_cache = Path(bytecode_cache) if bytecode_cache is not None else None
        self._runtime_dir: asyncio.Future[Path | None] | None = None
        self._site_dirs = site_packages(python)
        self._spawner: ThreadPoolExecutor | None = None
        #: Runtimes between spawn and listening at once: their imports are CPU-bound, and
        #: a storm of them all at once only makes every one of them (and the router's
        #: loop, waiting its turn for a CPU) slower; queued, they finish in order.
        self._starting = asyncio.Semaphore(max_starting or max(4, 2 * (os.cpu_count() or 1)))
        self.stop_grace = stop_grace
        self.extra_env = extra_env or {}
        #: For /readyz polls; the app passes its own session (closed by the app).
        self._session = session
        self._own_session = session is None
        self._procs: dict[str, LocalProcess] = {}
        #: Environment output files; the private directory (removed on close) by default.
        self._logs = Path(log_dir) if log_dir else None
        #: The work directory (created on first use, emptied of a killed router's
        #: leftovers first, removed on close): environments' TMPDIRs, and the log files
        #: unless ``log_dir`` is given. None: a private ``lambdakube-envs-*``.
        self._work_dir = Path(work_dir) if work_dir else None
        self._root: Path | None = None
        #: The parent-liveness pipe (read end, write end), created with the first spawn.
        self._liveness: tuple[int, int] | None = None
        #: Exit watchers of started processes (``_watch_exit``).
        self._watchers: set[asyncio.Task] = set()
        #: Spare generic runtimes (None when disabled); filled by ``prewarm``/first start.
        self.generic_pool: GenericPool[LocalProcess] | None = (
            GenericPool(
                generic_pool_size, spawn=self._spawn_generic, stop=self._kill, refill_delay=generic_refill_delay
            )
            if generic_pool_size > 0
            else None
        )

    def _http(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            self._own_session = True
            self._session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(limit=0, force_close=True),
                timeout=aiohttp.ClientTimeout(total=5),
            )
        return self._session

    def prewarm(self) -> None:
        """Start filling the generic pool (needs a running loop); called at router start."""
        if self.generic_pool is not None:
            self.generic_pool.start()

    async def start(self, fn: FunctionRef, spec: FunctionSpec, env_id: str, provisioned: bool) -> EnvironmentHandle:
        if spec.code is None:
            raise EnvironmentStartError(
                f"{fn}: the local backend runs inline code only (spec.image {spec.image!r} needs"
                " the kubernetes backend)",
                error_type="UnsupportedImage",
            )
        pool = self.generic_pool
        if pool is not None and not provisioned and not needs_fresh_process(spec):
            spare = pool.take()
            if spare is not None:
                handle = await self._specialise(spare, fn, spec)
                if handle is not None:
                    return handle
                # the spare was unusable: today's path instead
        return await self._start_fresh(fn, spec, env_id)

    # -- fresh processes (the function in the environment from the start) --------------

    async def _start_fresh(self, fn: FunctionRef, spec: FunctionSpec, env_id: str) -> EnvironmentHandle:
        try:  # at each spawn: a file may have vanished since the manifest was checked
            referenced = await asyncio.to_thread(self.objects.resolve, fn.namespace, spec) if spec.has_env_refs else {}
        except UnresolvedReference as exc:
            raise EnvironmentStartError(f"{fn}: {exc}") from None
        lp = await self._spawn(env_id, process_variables(fn, spec, env_id, referenced, self.function_endpoint))
        try:
            init = await self._send_code(lp, fn, spec)
        except BaseException:
            await self._kill(lp)
            raise
        return EnvironmentHandle(address=lp.address, env_id=env_id, init_duration=init, token=lp.token, private=lp)

    async def _send_code(self, lp: LocalProcess, fn: FunctionRef, spec: FunctionSpec) -> float:
        """``POST /init`` to a fresh process; Init's duration. Raises EnvironmentStartError
        with the runtime's Init error, or with the exit code and output of a process
        that died during Init (a module calling ``os._exit``, a crash)."""
        try:
            async with self._http().post(
                f"http://{lp.address}/init",
                json=init_body(fn, spec, self.function_endpoint),
                headers=lp.auth,
                timeout=_INIT_TIMEOUT,
            ) as resp:
                status, body = resp.status, await resp.read()
        except (aiohttp.ClientError, asyncio.TimeoutError) as exc:
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(lp.proc.wait(), 2)
            if lp.proc.returncode is not None:
                raise EnvironmentStartError(
                    f"runtime of {lp.env_id} exited with code {lp.proc.returncode} during Init:\n{lp.tail()}".rstrip()
                ) from None
            raise EnvironmentStartError(
                f"runtime of {lp.env_id} failed during /init: {type(exc).__name__}: {exc}"
            ) from None
        if status == 200:
            return _init_seconds(body)
        info = runtime_answer(body)
        if status == 500 and "error" in info:
            raise EnvironmentStartError(init_error_message(str(fn), info))
        raise EnvironmentStartError(
            f"runtime of {lp.env_id} refused /init with {status}: {body[:500].decode(errors='replace')}"
        )

    # -- generic processes (started without a function, specialised by POST /init) -----

    async def _spawn_generic(self) -> LocalProcess:
        env_id = new_env_id("generic", labels.ROLE_GENERIC)
        # No LAMBDAKUBE_HANDLER: the runtime listens, stays "generic" and waits for /init.
        return await self._spawn(env_id, {"LAMBDAKUBE_ENV_ID": env_id})

    async def _specialise(self, lp: LocalProcess, fn: FunctionRef, spec: FunctionSpec) -> EnvironmentHandle | None:
        """``POST /init`` on a spare. Returns the ready handle; None when the spare was
        unusable (it died, or refused the body: the caller starts a fresh process);
        raises EnvironmentStartError when the function's Init failed (the runtime's
        error, the same text as a fresh start's). The process is stopped in every case
        but success."""
        pool = self.generic_pool
        assert pool is not None
        self._procs[lp.env_id] = lp
        lp.source = SOURCE_GENERIC
        url = f"http://{lp.address}/init"
        try:
            try:
                async with self._http().post(
                    url, json=init_body(fn, spec, self.function_endpoint), headers=lp.auth, timeout=_INIT_TIMEOUT
                ) as resp:
                    status, body = resp.status, await resp.read()
            except (aiohttp.ClientError, asyncio.TimeoutError) as exc:
                # The spare died: before /init reached it (killed, crashed) or, rarely,
                # because the function's import killed it. The two cannot be told apart
                # here, so the function gets a fresh process either way: a dead spare is
                # never a failed cold start, and a module that kills its process fails
                # there with exactly today's error (the import runs again, as Lambda
                # retries a failed Init on the next invocation).
                log.warning(
                    "%s: generic environment %s failed during /init (%s: %s); starting a fresh one",
                    fn,
                    lp.env_id,
                    type(exc).__name__,
                    exc,
                )
                pool.record("failed")
                await self._kill(lp)
                return None
            if status == 200:
                pool.record("specialised")
                return EnvironmentHandle(
                    address=lp.address, env_id=lp.env_id, init_duration=_init_seconds(body), token=lp.token, private=lp
                )
            info = runtime_answer(body)
            if status == 500 and "error" in info:
                pool.record("init_error")
                raise EnvironmentStartError(init_error_message(str(fn), info))
            # 400 (a router/runtime contract mismatch) or 409 (not generic after all): a
            # bug, logged loudly; the function still gets a fresh environment.
            log.error(
                "%s: generic environment %s refused /init with %d: %s; starting a fresh one",
                fn,
                lp.env_id,
                status,
                body[:500].decode(errors="replace"),
            )
            pool.record("failed")
            await self._kill(lp)
            return None
        except BaseException:
            await self._kill(lp)
            raise

    # -- shared helpers -------------------------------------------------------------------

    async def _spawn(self, env_id: str, variables: dict[str, str]) -> LocalProcess:
        """Start the runtime and return it listening (``address`` set). Both paths
        (fresh and generic) use it; the process is killed if this fails.

        The blocking part (the TMPDIR, the log file, ``Popen``'s fork and exec) runs on
        the spawn threads (``child``). The runtime reports its port on a pipe of its own
        (``LAMBDAKUBE_READY_FD``): the loop wakes up on that line, or on the pipe's end
        when the runtime exits before listening."""
        loop = asyncio.get_running_loop()
        runtime_dir = await self._runtime_code()
        liveness = self._liveness_fd()
        ready_read, ready_write = os.pipe()  # both close-on-exec; pass_fds hands over the write end
        tmp_dir = self._root_dir() / f"{env_id}.tmp"
        token = env_token.new_token()
        env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "HOME": os.environ.get("HOME", "/tmp"),
            "TMPDIR": str(tmp_dir),
            "PYTHONPATH": os.pathsep.join(([str(runtime_dir)] if runtime_dir else []) + self._extra_pythonpath()),
            "PYTHONUNBUFFERED": "1",
            "PYTHONDONTWRITEBYTECODE": "1",
            **self.extra_env,
            **variables,
            runtime_parent.VARIABLE: str(liveness),
            runtime_parent.READY_VARIABLE: str(ready_write),
            env_token.VARIABLE: token,
        }
        isolated = not configures_interpreter({**self.extra_env, **variables})
        argv = runtime_command(self.python, runtime_dir, self._site_dirs, isolated=isolated)
        log_path = self._log_dir() / f"{env_id}.log"
        async with self._starting:
            spawning = loop.run_in_executor(
                self._spawn_threads(), _popen, argv, env, log_path, tmp_dir, (liveness, ready_write)
            )
            try:
                # shielded: the thread goes on after a cancellation, and its process with it
                popen = await asyncio.shield(spawning)
            except asyncio.CancelledError:
                spawning.add_done_callback(
                    lambda done: self._abandon(done, env_id, log_path, tmp_dir, (ready_read, ready_write))
                )
                raise
            except BaseException:
                os.close(ready_read)
                os.close(ready_write)
                raise
            os.close(ready_write)  # the runtime's now: its end is our EOF
            lp = LocalProcess(Child(popen), env_id, log_path, tmp_dir=tmp_dir, token=token)
            self._procs[env_id] = lp
            try:
                port = await self._read_port(lp, ready_read)
            except BaseException:
                await self._kill(lp)
                raise
        lp.address = f"127.0.0.1:{port}"
        if self._log_rotator is None and self.log_check_interval > 0:
            self._log_rotator = loop.create_task(self._rotate_logs_forever())
        watcher = loop.create_task(self._watch_exit(lp))
        self._watchers.add(watcher)
        watcher.add_done_callback(self._watchers.discard)
        return lp

    def _abandon(
        self, spawning: asyncio.Future, env_id: str, log_path: Path, tmp_dir: Path, ready: tuple[int, int]
    ) -> None:
        """A start cancelled while its ``Popen`` ran: once that is done, stop what it
        started (if anything) and remove its files. The ready pipe is closed here, not
        at the cancellation: until now ``Popen`` may still be handing it to the child."""
        for fd in ready:
            os.close(fd)
        if spawning.cancelled() or spawning.exception() is not None:
            # the spawn failed anyway (_popen removed the TMPDIR); the log file may be there
            with contextlib.suppress(OSError):
                log_path.unlink()
            return
        lp = LocalProcess(Child(spawning.result()), env_id, log_path, tmp_dir=tmp_dir)
        task = asyncio.get_running_loop().create_task(self._kill(lp))
        self._watchers.add(task)
        task.add_done_callback(self._watchers.discard)

    async def rotate_logs(self) -> int:
        """Rotate every live environment's log file that is over ``log_limit`` (on a
        worker thread); how many were rotated."""
        procs = list(self._procs.values())
        if not procs:
            return 0
        limit = self.log_limit
        rotated = await asyncio.to_thread(lambda: [lp for lp in procs if rotate_log(lp.log_path, limit)])
        for lp in rotated:
            if self._procs.get(lp.env_id) is not lp:  # stopped meanwhile: _kill did not see the .1
                with contextlib.suppress(OSError):
                    rotated_path(lp.log_path).unlink()
        return len(rotated)

    async def _rotate_logs_forever(self) -> None:
        while True:
            await asyncio.sleep(self.log_check_interval)
            try:
                await self.rotate_logs()
            except OSError as exc:  # a full disk, a removed directory: try again later
                log.warning("cannot rotate environment logs: %s", exc)

    def _extra_pythonpath(self) -> list[str]:
        """The router's own ``PYTHONPATH``, after the runtime's (for ``python -m``)."""
        return [os.environ["PYTHONPATH"]] if os.environ.get("PYTHONPATH") else []

    async def _runtime_code(self) -> Path | None:
        """The runtime's compiled copy (``runtime_copy``), made once per backend, on a
        spawn thread; concurrent first starts wait for the same one."""
        if self._runtime_dir is None:
            loop = asyncio.get_running_loop()
            self._runtime_dir = loop.run_in_executor(
                self._spawn_threads(), runtime_copy.prepare_or_source, self.python, self._bytecode_cache
            )
        return await asyncio.shield(self._runtime_dir)

    def _spawn_threads(self) -> ThreadPoolExecutor:
        if self._spawner is None:
            self._spawner = ThreadPoolExecutor(SPAWN_THREADS, thread_name_prefix="lambdakube-spawn")
        return self._spawner

    async def _watch_exit(self, lp: LocalProcess) -> None:
        """Report a listening environment whose process ended by itself (not by
        ``_kill``, which forgets it first)."""
        code = await lp.proc.wait()
        if self._procs.get(lp.env_id) is lp:
            log.warning("environment %s exited by itself (code %s):\n%s", lp.env_id, code, lp.tail(1024))
            if self.lost_listener is not None:
                self.lost_listener(lp.env_id)

    def is_lost(self, handle: EnvironmentHandle) -> bool:
        lp = handle.private
        return isinstance(lp, LocalProcess) and not lp.alive()

    def _liveness_fd(self) -> int:
        """The read end of the parent-liveness pipe every runtime gets. Both ends are
        close-on-exec here (``os.pipe``); ``pass_fds`` gives a child the read end
        only, so the write end is this process's alone and closes when it dies."""
        if self._liveness is None:
            self._liveness = os.pipe()
        return self._liveness[0]

    def _root_dir(self) -> Path:
        if self._root is None or not self._root.is_dir():
            if self._work_dir is None:
                self._root = Path(tempfile.mkdtemp(prefix="lambdakube-envs-"))
            else:
                self._root = self._work_dir
                if self._root.exists():  # a killed router's leftovers: nothing runs there
                    log.info("removing leftover environment files in %s", self._root)
                    shutil.rmtree(self._root, ignore_errors=True)
                self._root.mkdir(parents=True, mode=0o700)
        return self._root

    def _log_dir(self) -> Path:
        if self._logs is None:
            return self._root_dir()
        self._logs.mkdir(parents=True, exist_ok=True)
        return self._logs

    async def _read_port(self, lp: LocalProcess, fd: int) -> int:
        """The port from the runtime's ready pipe (``fd``, closed here). Raises
        EnvironmentStartError when the runtime exits (or closes the pipe) before
        listening, or has not listened within ``listen_timeout``."""
        loop = asyncio.get_running_loop()
        line = loop.create_future()
        data = bytearray()

        def readable() -> None:
            try:
                chunk = os.read(fd, 256)
            except BlockingIOError:
                return
            except OSError:
                chunk = b""
            data.extend(chunk)
            if chunk and b"\n" not in data and len(data) < 4096:
                return
            loop.remove_reader(fd)
            if not line.done():
                line.set_result(bytes(data))

        os.set_blocking(fd, False)
        loop.add_reader(fd, readable)
        try:
            async with asyncio.timeout(self.listen_timeout):
                head = await line
        except TimeoutError:
            raise EnvironmentStartError(
                f"runtime of {lp.env_id} did not report listening within"
                f" {self.listen_timeout:g}s:\n{lp.tail()}".rstrip()
            ) from None
        finally:
            loop.remove_reader(fd)
            os.close(fd)
        if head.startswith(LISTENING_PREFIX) and head.endswith(b"\n"):
            with contextlib.suppress(ValueError, IndexError):
                return int(head[len(LISTENING_PREFIX) :].split()[0])
        if not head:  # the pipe's end: the runtime is gone (or closed it) before listening
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(lp.proc.wait(), _EXIT_WAIT_SECONDS)
            if lp.proc.returncode is not None:
                raise EnvironmentStartError(
                    f"runtime of {lp.env_id} exited with code {lp.proc.returncode} before"
                    f" listening:\n{lp.tail()}".rstrip()
                )
        raise EnvironmentStartError(
            f"runtime of {lp.env_id} did not report its port (ready pipe said {head[:200]!r}):\n{lp.tail()}".rstrip()
        )

    async def stop(self, handle: EnvironmentHandle) -> None:
        lp = self._procs.get(handle.env_id)
        if lp is not None:
            await self._kill(lp)

    async def _kill(self, lp: LocalProcess) -> None:
        self._procs.pop(lp.env_id, None)
        proc = lp.proc
        if proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                proc.send_signal(signal.SIGTERM)
            try:
                await asyncio.wait_for(asyncio.shield(proc.wait()), self.stop_grace)
            except (asyncio.TimeoutError, asyncio.CancelledError):
                with contextlib.suppress(ProcessLookupError):
                    proc.kill()
                await proc.wait()
        for path in (lp.log_path, rotated_path(lp.log_path)):
            with contextlib.suppress(OSError):
                path.unlink()
        if lp.tmp_dir is not None:
            shutil.rmtree(lp.tmp_dir, ignore_errors=True)

    async def close(self) -> None:
        if self._log_rotator is not None:
            self._log_rotator.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._log_rotator
            self._log_rotator = None
        if self.generic_pool is not None:
            await self.generic_pool.close()
        await asyncio.gather(*(self._kill(lp) for lp in list(self._procs.values())), return_exceptions=True)
        if self._session is not None and self._own_session:
            await self._session.close()
        for watcher in list(self._watchers):
            watcher.cancel()
        await asyncio.gather(*self._watchers, return_exceptions=True)
        if self._root is not None:
            shutil.rmtree(self._root, ignore_errors=True)
            self._root = None
        if self._liveness is not None:
            for fd in self._liveness:
                os.close(fd)
            self._liveness = None
        if self._spawner is not None:
            self._spawner.shutdown(wait=False)
            self._spawner = None
        self._runtime_dir = None


def _init_seconds(body: bytes) -> float:
    try:
        return float(runtime_answer(body).get("initDurationMs") or 0) / 1000
    except (TypeError, ValueError):
        return 0.0


def _popen(
    argv: list[str], env: dict[str, str], log_path: Path, tmp_dir: Path, pass_fds: tuple[int, ...]
) -> subprocess.Popen:
    """On a spawn thread: the environment's TMPDIR, its log file, and the process."""
    tmp_dir.mkdir(mode=0o700)
    try:
        # O_APPEND: every write goes to the end, so a truncation (rotate_log) is safe
        with open(log_path, "ab") as out:
            return subprocess.Popen(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                env=env,
                pass_fds=pass_fds,
                start_new_session=True,  # a Ctrl-C in `lambdakube dev` reaches the router only
            )
    except BaseException:
        shutil.rmtree(tmp_dir, ignore_errors=True)
        raise
