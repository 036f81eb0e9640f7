"""The local cluster launcher: it forms a full cluster and leaves no process behind."""

from __future__ import annotations

import itertools
import os

import pytest
import redis

from redis_orm_async import BackendUnavailableError
from redis_orm_async.testing import LocalRedisCluster
from redis_orm_async.testing._cluster import slot_ranges


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def test_slot_ranges_cover_every_slot_once() -> None:
    for masters in (1, 2, 3, 5, 7):
        ranges = slot_ranges(masters)
        assert ranges[0][0] == 0 and ranges[-1][1] == 16383
        assert all(left[1] + 1 == right[0] for left, right in itertools.pairwise(ranges))


def test_the_launcher_forms_a_full_cluster_and_stop_kills_every_process() -> None:
    cluster = LocalRedisCluster(masters=3)
    with cluster:
        assert cluster.running and len(set(cluster.ports)) == 3
        assert cluster.url == f"redis://127.0.0.1:{cluster.ports[0]}"
        assert cluster.startup_nodes == [("127.0.0.1", port) for port in cluster.ports]
        pids = []
        for port in cluster.ports:
            with redis.Redis(host="127.0.0.1", port=port, decode_responses=True) as node:
                info = node.execute_command("CLUSTER", "INFO")
                assert "cluster_state:ok" in info and "cluster_slots_assigned:16384" in info
                assert "cluster_known_nodes:3" in info
                covered = set()
                for first, last, primary, *_replicas in node.execute_command("CLUSTER", "SLOTS"):
                    assert int(primary[1]) in cluster.ports
                    covered.update(range(first, last + 1))
                assert covered == set(range(16384))
                directory = node.config_get("dir")["dir"]
                assert os.path.exists(os.path.join(directory, "nodes.conf")), "config in its own dir"
                pids.append(int(node.info("server")["process_id"]))
        assert cluster.start() is cluster, "start is idempotent"
    assert not cluster.running and cluster.ports == []
    assert not any(_pid_alive(pid) for pid in pids)
    cluster.stop()


async def test_async_with_starts_and_stops() -> None:
    async with LocalRedisCluster(masters=2) as cluster:
        with redis.Redis(host="127.0.0.1", port=cluster.ports[1], decode_responses=True) as node:
            assert "cluster_state:ok" in node.execute_command("CLUSTER", "INFO")
            pid = int(node.info("server")["process_id"])
    assert not cluster.running and not _pid_alive(pid)


class _Watched(LocalRedisCluster):
    """Remembers each server it starts, so that the test can check they were all stopped."""

    started: list[int]

    def _start_node(self) -> None:
        super()._start_node()
        with redis.Redis(host="127.0.0.1", port=self._servers[-1].port) as node:
            self.started.append(int(node.info("server")["process_id"]))


def test_a_failed_start_stops_every_process_it_started() -> None:
    cluster = _Watched(masters=3, startup_timeout=0.0)
    cluster.started = []
    with pytest.raises(BackendUnavailableError, match="did not converge"):
        cluster.start()
    assert len(cluster.started) == 3 and not cluster.running and cluster.ports == []
    assert not any(_pid_alive(pid) for pid in cluster.started)
