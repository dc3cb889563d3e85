"""A real Redis Cluster of three masters for the tests: three ``redis-server``
processes (``--cluster-enabled yes``) on free loopback ports, their 16,384 slots
split between them, nothing persisted."""

from __future__ import annotations

import random
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path
from types import TracebackType

import redis

MASTERS = 3
SLOTS = 16384
STARTUP_S = 20.0


def _free_port() -> int:
    """A free port whose cluster bus port (10,000 higher) is free too."""
    rng = random.Random()
    while True:
        port = rng.randrange(20000, 55535)
        try:
            with socket.socket() as first, socket.socket() as bus:
                first.bind(("127.0.0.1", port))
                bus.bind(("127.0.0.1", port + 10000))
        except OSError:
            continue
        return port


class _Servers:
    """redis-server processes started from ``binary`` in a private directory, all
    stopped (and the directory removed) on ``close`` or at the ``with`` block's end."""

    def __init__(self, prefix: str, what: str) -> None:
        found = shutil.which("redis-server")
        if found is None:
            raise RuntimeError(f"redis-server is not on PATH: {what}")
        self._binary = found
        self._dir = Path(tempfile.mkdtemp(prefix=prefix))
        self._processes: list[subprocess.Popen[bytes]] = []

    def __exit__(
        self,
        _type: type[BaseException] | None,
        _value: BaseException | None,
        _tb: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        for process in self._processes:
            process.terminate()
        for process in self._processes:
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
        shutil.rmtree(self._dir, ignore_errors=True)


class LocalCluster(_Servers):
    """``with LocalCluster() as cluster: cluster.url`` (``redis+cluster://...``)."""

    def __init__(self) -> None:
        super().__init__("ivr-cluster-", "the cluster tests start three")
        self.ports = [_free_port() for _ in range(MASTERS)]

    @property
    def url(self) -> str:
        return f"redis+cluster://127.0.0.1:{self.ports[0]}"

    def __enter__(self) -> LocalCluster:
        try:
            self._start()
        except RuntimeError as exc:
            logs = self.logs()
            self.close()
            raise RuntimeError(f"{exc}:\n{logs}") from None
        except BaseException:
            self.close()
            raise
        return self

    def _start(self) -> None:
        for port in self.ports:
            node_dir = self._dir / str(port)
            node_dir.mkdir()
            command = [
                self._binary, "--port", str(port), "--bind", "127.0.0.1",
                "--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf",
                "--dir", str(node_dir), "--save", "", "--appendonly", "no",
            ]  # fmt: skip
            with (node_dir / "log").open("wb") as log:
                self._processes.append(
                    subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)  # noqa: S603
                )
        clients = [redis.Redis(port=port) for port in self.ports]
        deadline = time.monotonic() + STARTUP_S
        for client in clients:
            self._until(deadline, lambda c=client: bool(c.ping()))
        share = SLOTS // MASTERS
        for index, client in enumerate(clients):
            first = index * share
            last = SLOTS - 1 if index == MASTERS - 1 else first + share - 1
            client.execute_command("CLUSTER", "ADDSLOTSRANGE", first, last)  # type: ignore[no-untyped-call]
        for client in clients[1:]:
            client.execute_command("CLUSTER", "MEET", "127.0.0.1", self.ports[0])  # type: ignore[no-untyped-call]
        for client in clients:
            self._until(deadline, lambda c=client: _cluster_ok(c))
        for client in clients:
            client.close()

    @staticmethod
    def _until(deadline: float, ready: object) -> None:
        while True:
            try:
                if ready():  # type: ignore[operator]
                    return
            except redis.RedisError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError("the local Redis Cluster did not come up")
            time.sleep(0.05)

    def logs(self) -> str:
        """The nodes' logs (what to read when the cluster did not come up)."""
        return "\n".join(
            f"--- {port}\n" + (self._dir / str(port) / "log").read_text(errors="replace")[-2000:]
            for port in self.ports
            if (self._dir / str(port) / "log").exists()
        )


def _cluster_ok(client: redis.Redis) -> bool:
    info = client.execute_command("CLUSTER", "INFO")  # type: ignore[no-untyped-call]
    text = info.decode() if isinstance(info, bytes) else str(info)
    known = "cluster_known_nodes:" + str(MASTERS)
    return "cluster_state:ok" in text and known in text


class LocalSentinel(_Servers):
    """A Redis server and one Redis Sentinel watching it as ``mymaster``:
    ``with LocalSentinel() as sentinel: sentinel.url`` (``redis+sentinel://...``)."""

    SERVICE = "mymaster"

    def __init__(self) -> None:
        super().__init__("ivr-sentinel-", "the sentinel test starts two")
        self.master_port, self.sentinel_port = _free_port(), _free_port()

    @property
    def url(self) -> str:
        return f"redis+sentinel://127.0.0.1:{self.sentinel_port}/{self.SERVICE}"

    def __enter__(self) -> LocalSentinel:
        try:
            self._start()
        except BaseException:
            self.close()
            raise
        return self

    def _start(self) -> None:
        config = self._dir / "sentinel.conf"
        config.write_text(
            f"port {self.sentinel_port}\nbind 127.0.0.1\ndir {self._dir}\n"
            f"sentinel monitor {self.SERVICE} 127.0.0.1 {self.master_port} 1\n"
        )
        commands = [
            [self._binary, "--port", str(self.master_port), "--bind", "127.0.0.1",
             "--save", "", "--appendonly", "no", "--dir", str(self._dir)],
            [self._binary, str(config), "--sentinel"],
        ]  # fmt: skip
        for command in commands:
            self._processes.append(
                subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # noqa: S603
            )
        sentinel = redis.Redis(port=self.sentinel_port)
        deadline = time.monotonic() + STARTUP_S
        LocalCluster._until(
            deadline,
            lambda: (
                sentinel.execute_command(  # type: ignore[no-untyped-call]
                    "SENTINEL", "GET-MASTER-ADDR-BY-NAME", self.SERVICE
                )
                is not None
            ),
        )
        sentinel.close()
