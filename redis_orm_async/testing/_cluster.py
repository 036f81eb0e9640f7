"""A private, throwaway Redis Cluster: N ``redis-server`` primaries on free loopback ports.

Each node is an ``EmbeddedRedis`` with cluster mode on (its ``nodes.conf`` lives in that server's
own temporary ``--dir``). The launcher assigns the 16384 slots evenly, joins the nodes with
``CLUSTER MEET`` and waits until every node reports ``cluster_state:ok`` and the same slot map. It
has no replicas, and it only ever talks to and stops the servers it started.
"""

from __future__ import annotations

import socket
import time
from typing import Self

import redis

from .._backends.protocol import BackendFeatures, server_features
from .._errors import BackendUnavailableError
from ._embedded import EmbeddedRedis, ServerKind, free_port
from ._lifecycle import ManagedServer

SLOTS = 16384
BUS_PORT_OFFSET = 10000
"""Each node also listens on its port + 10000 (the cluster bus), so both must be free."""
ADDSLOTS_CHUNK = 2048
"""Redis 6.2 has no ADDSLOTSRANGE; there, slots are added in chunks to keep each command small."""


def _bindable(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


def _cluster_port(taken: set[int]) -> int:
    """A free port whose cluster-bus port is free and valid too."""
    for _ in range(200):
        port = free_port()
        bus = port + BUS_PORT_OFFSET
        if bus <= 65535 and not {port, bus} & taken and _bindable(bus):
            return port
    raise BackendUnavailableError("no free port pair for a cluster node", backend_kind="embedded")


def slot_ranges(masters: int) -> list[tuple[int, int]]:
    """Inclusive ``(first, last)`` slot range of each primary, as even as integer division allows."""
    return [(i * SLOTS // masters, (i + 1) * SLOTS // masters - 1) for i in range(masters)]


class LocalRedisCluster(ManagedServer):
    """Start and stop a private Redis Cluster of ``masters`` primaries.

    Use ``with LocalRedisCluster() as cluster:`` (or ``async with``), then connect with
    ``redis.asyncio.RedisCluster.from_url(cluster.url)`` or ``RedisCluster(host, port)`` of any
    pair in ``startup_nodes``.
    """

    def __init__(
        self, masters: int = 3, *, server: ServerKind = "redis", startup_timeout: float = 30.0
    ) -> None:
        if masters < 1:
            raise ValueError("a cluster needs at least one primary")
        self.masters = masters
        self.server = server
        self._startup_timeout = startup_timeout
        self._servers: list[EmbeddedRedis] = []

    @property
    def ports(self) -> list[int]:
        return [server.port for server in self._servers]

    @property
    def startup_nodes(self) -> list[tuple[str, int]]:
        return [("127.0.0.1", port) for port in self.ports]

    @property
    def url(self) -> str:
        if not self._servers:
            raise BackendUnavailableError("the cluster is not running", backend_kind="embedded")
        return f"redis://127.0.0.1:{self._servers[0].port}"

    @property
    def running(self) -> bool:
        return len(self._servers) == self.masters and all(server.running for server in self._servers)

    def start(self) -> Self:
        if self.running:
            return self
        self.stop()
        try:
            for _ in range(self.masters):
                self._start_node()
            self._form()
        except BaseException:
            self.stop()
            raise
        return self

    def _start_node(self) -> None:
        taken = {p + offset for p in self.ports for offset in (0, BUS_PORT_OFFSET)}
        for attempt in range(5):  # another process may grab the port between the check and the bind
            server = EmbeddedRedis(
                server=self.server,
                port=_cluster_port(taken),
                args=[
                    "--cluster-enabled", "yes",
                    "--cluster-config-file", "nodes.conf",
                    "--cluster-node-timeout", "2000",
                ],
            )  # fmt: skip
            self._servers.append(server)  # listed before it starts, so that stop() always reaches it
            try:
                server.start()
            except BackendUnavailableError:
                self._servers.remove(server)
                if attempt == 4:
                    raise
            else:
                return

    def _client(self, port: int) -> redis.Redis:
        return redis.Redis(host="127.0.0.1", port=port, decode_responses=True, socket_timeout=5)

    def _form(self) -> None:
        """Assign slots, join the nodes and wait until they agree."""
        ranges = slot_ranges(self.masters)
        for epoch, (port, (first, last)) in enumerate(zip(self.ports, ranges, strict=True), start=1):
            with self._client(port) as node:
                # Distinct config epochs up front spare the nodes the collision-resolution dance.
                node.execute_command("CLUSTER", "SET-CONFIG-EPOCH", epoch)
                features = server_features(BackendFeatures(kind="redis-cluster"), node.info("server"), "")
                if features.at_least(redis=(7, 0)):
                    node.execute_command("CLUSTER", "ADDSLOTSRANGE", first, last)
                    continue
                for start in range(first, last + 1, ADDSLOTS_CHUNK):
                    chunk = range(start, min(start + ADDSLOTS_CHUNK, last + 1))
                    node.execute_command("CLUSTER", "ADDSLOTS", *chunk)
        with self._client(self.ports[0]) as first_node:
            for port in self.ports[1:]:
                first_node.execute_command("CLUSTER", "MEET", "127.0.0.1", port)
        self._wait_until_agreed(ranges)

    def _wait_until_agreed(self, ranges: list[tuple[int, int]]) -> None:
        expected = sorted((first, last, port) for (first, last), port in zip(ranges, self.ports, strict=True))
        deadline = time.monotonic() + self._startup_timeout
        seen = ""
        while time.monotonic() < deadline:
            ready = True
            for port in self.ports:
                with self._client(port) as node:
                    info = node.execute_command("CLUSTER", "INFO")
                    slot_map = sorted(
                        (int(entry[0]), int(entry[1]), int(entry[2][1]))
                        for entry in node.execute_command("CLUSTER", "SLOTS")
                    )
                if "cluster_state:ok" not in info or slot_map != expected:
                    ready, seen = False, f"node {port}: {info.splitlines()[0]}"
                    break
            if ready:
                return
            time.sleep(0.05)
        raise BackendUnavailableError(
            f"the local cluster did not converge in {self._startup_timeout}s ({seen})",
            backend_kind="embedded",
        )

    def stop(self) -> None:
        """Stop every server this object started; safe to call twice and after a failed start."""
        servers, self._servers = self._servers, []
        for server in servers:
            server.stop()
