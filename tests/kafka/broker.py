"""A real Apache Kafka broker on loopback for the Kafka event source's tests and bench:
one JVM in KRaft mode (``process.roles=broker,controller``, a single voter), its jars
resolved from Maven Central by hack/build-kafka.sh (``make kafka``; this module only
locates them, see ``locate_kafka``).

Why one node and a fixed cluster id: the tests need real partitions, a real group
coordinator and real committed offsets, not a cluster's failover; the storage is
formatted fresh in a tmp dir each run, so a fixed id keeps a run's log readable and
two runs never share state. The ports are free loopback ports picked at start.

Run it by hand for debugging:  python -m tests.kafka.broker
"""

from __future__ import annotations

import contextlib
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from tests.cluster.controlplane import ToolMissing, free_port, locate
from tests.procs import stop_process

REPO = Path(__file__).resolve().parents[2]
BUILD_SCRIPT = REPO / "hack" / "build-kafka.sh"
#: A Kafka cluster id is a base64url UUID (16 bytes): this one spells "lambdakube-test1".
CLUSTER_ID = "bGFtYmRha3ViZS10ZXN0MQ"
#: Small and serial: the machine has two cores shared with everything else.
JVM_OPTS = ["-Xms128m", "-Xmx512m", "-XX:+UseSerialGC", "-XX:TieredStopAtLevel=1", "-Djava.awt.headless=true"]


def locate_kafka() -> Path:
    """The cache directory holding ``libs/`` and ``log4j2.properties`` (``make kafka``)."""
    return locate(BUILD_SCRIPT)


@dataclass
class Broker:
    home: Path
    workdir: Path
    port: int
    controller_port: int
    proc: subprocess.Popen | None = None

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def log_path(self) -> Path:
        return self.workdir / "broker.log"

    def properties(self) -> str:
        return "\n".join(
            [
                "process.roles=broker,controller",
                "node.id=1",
                f"controller.quorum.voters=1@127.0.0.1:{self.controller_port}",
                f"listeners=PLAINTEXT://127.0.0.1:{self.port},CONTROLLER://127.0.0.1:{self.controller_port}",
                f"advertised.listeners=PLAINTEXT://127.0.0.1:{self.port}",
                "controller.listener.names=CONTROLLER",
                "listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
                "inter.broker.listener.name=PLAINTEXT",
                f"log.dirs={self.workdir / 'data'}",
                "num.partitions=1",
                "offsets.topic.replication.factor=1",
                "offsets.topic.num.partitions=4",
                "transaction.state.log.replication.factor=1",
                "transaction.state.log.min.isr=1",
                "share.coordinator.state.topic.replication.factor=1",
                "share.coordinator.state.topic.min.isr=1",
                # A consumer joining a fresh group is assigned at once, not after 3 s.
                "group.initial.rebalance.delay.ms=0",
                "auto.create.topics.enable=false",
                "",
            ]
        )

    def _java(self, main: str, *args: str) -> list[str]:
        return [
            "java",
            *JVM_OPTS,
            f"-Dlog4j2.configurationFile={self.home / 'log4j2.properties'}",
            "-cp",
            str(self.home / "libs" / "*"),
            main,
            *args,
        ]

    def start(self, timeout: float = 90) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        config = self.workdir / "server.properties"
        config.write_text(self.properties())
        fmt = subprocess.run(
            self._java("kafka.tools.StorageTool", "format", "-t", CLUSTER_ID, "-c", str(config)),
            capture_output=True,
            text=True,
            timeout=120,
        )
        if fmt.returncode != 0:
            raise RuntimeError(f"kafka storage format failed ({fmt.returncode}): {fmt.stderr[-2000:]}")
        log = open(self.log_path, "ab")
        try:
            self.proc = subprocess.Popen(
                self._java("kafka.Kafka", str(config)), stdout=log, stderr=subprocess.STDOUT, cwd=self.workdir
            )
        finally:
            log.close()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"kafka exited {self.proc.returncode}; its log: {self.log_tail()}")
            if self._ready():
                return
            time.sleep(0.2)
        self.stop()
        raise RuntimeError(f"kafka not ready after {timeout} s; its log: {self.log_tail()}")

    def _ready(self) -> bool:
        """The broker's listener accepts and its log says the broker (not only the
        controller) has started: before that, metadata requests fail."""
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=0.5):
                pass
        except OSError:
            return False
        return "Kafka Server started" in self.log_path.read_text(errors="replace")

    def log_tail(self, chars: int = 3000) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-chars:]
        except FileNotFoundError:
            return "(no log)"

    def stop(self) -> None:
        if self.proc is not None:
            stop_process(self.proc, timeout=15)
            self.proc = None


@contextlib.contextmanager
def running(workdir: Path) -> Iterator[Broker]:
    """A started broker for the ``with`` block; stopped by its PID afterwards."""
    broker = Broker(home=locate_kafka(), workdir=workdir, port=free_port(), controller_port=free_port())
    broker.start()
    try:
        yield broker
    finally:
        broker.stop()


__all__ = ["Broker", "ToolMissing", "locate_kafka", "running"]


if __name__ == "__main__":
    import tempfile

    with running(Path(tempfile.mkdtemp(prefix="kafka-"))) as b:
        print(f"bootstrap {b.bootstrap}, pid {b.proc.pid if b.proc else '?'}, log {b.log_path}", flush=True)
        with contextlib.suppress(KeyboardInterrupt):
            while True:
                time.sleep(3600)
