"""A local Upstash-compatible REST server for tests.

It lets the Upstash backend be exercised with the real ``upstash_redis`` client
against a throwaway ``redis-server``, without network access or an account.
It is a testing aid, not a production proxy: it trusts its caller, keeps no
metrics, and favours exact protocol behaviour over throughput.
"""

from __future__ import annotations

import base64
import contextlib
import errno
import hmac
import http.server
import json
import re
import select
import socket
import socketserver
import threading
import urllib.parse
from typing import Any, Final, TypeAlias

from ._lifecycle import ManagedServer

__all__ = ["UpstashRestServer"]

_MAX_BODY_BYTES: Final = 256 * 1024 * 1024
_MAX_IDLE_CONNECTIONS: Final = 8
_IDLE_CLIENT_TIMEOUT: Final = 120.0
_MAX_REPLY_DEPTH: Final = 64

_REFUSED: Final = frozenset(
    {
        "MULTI",
        "EXEC",
        "DISCARD",
        "WATCH",
        "UNWATCH",
        "SELECT",
        "SUBSCRIBE",
        "PSUBSCRIBE",
        "SSUBSCRIBE",
        "UNSUBSCRIBE",
        "PUNSUBSCRIBE",
        "SUNSUBSCRIBE",
        "MONITOR",
        "HELLO",
        "QUIT",
        "AUTH",
        "RESET",
        "SYNC",
        "PSYNC",
    }
)
_BLOCKING: Final = frozenset(
    {
        "BLPOP",
        "BRPOP",
        "BRPOPLPUSH",
        "BLMOVE",
        "BLMPOP",
        "BZPOPMIN",
        "BZPOPMAX",
        "BZMPOP",
        "WAIT",
        "WAITAOF",
    }
)

JSONValue: TypeAlias = str | int | list["JSONValue"] | dict[str, "JSONValue"] | None


class _Status(bytes):
    """A RESP simple string; kept apart from bulk strings because base64 skips ``OK``."""


class _ErrorReply(str):
    """A RESP error reply; errors are never base64-encoded at the top level."""


Reply: TypeAlias = bytes | int | _ErrorReply | list["Reply"] | None


class _ProtocolError(Exception):
    """Raised when redis sends something that is not RESP2; the connection is dropped."""


class _RedisUnavailable(ConnectionError):
    """A failure whose message is ours (never request data), so it can be shown to clients."""


class _BadRequest(Exception):
    """A request the server refuses before talking to redis (HTTP 400)."""


class _RedisConnection:
    """One RESP2 connection; a hand-written reader keeps status, bulk and error replies apart."""

    def __init__(self, target: _RedisTarget, timeout: float) -> None:
        if target.unix_path is not None:
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            try:
                sock.settimeout(timeout)
                sock.connect(target.unix_path)
            except BaseException:
                sock.close()
                raise
        else:
            sock = socket.create_connection((target.host, target.port), timeout=timeout)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self._sock = sock
        self._buf = bytearray()
        self._pos = 0
        self.broken = False
        try:
            self._handshake(target)
        except BaseException:
            self.close()
            raise

    def _handshake(self, target: _RedisTarget) -> None:
        setup: list[list[bytes]] = []
        if target.password is not None:
            if target.username is not None:
                setup.append([b"AUTH", target.username.encode(), target.password.encode()])
            else:
                setup.append([b"AUTH", target.password.encode()])
        if target.db:
            setup.append([b"SELECT", str(target.db).encode()])
        if not setup:
            return
        self.send(setup)
        for args in setup:
            reply = self.read_reply()
            if isinstance(reply, _ErrorReply):
                step = args[0].decode()
                raise _RedisUnavailable(f"redis refused {step}: {reply.split(' ', 1)[0]}")

    def is_alive(self) -> bool:
        """Detect a connection that redis closed while it sat idle in the pool."""
        if self.broken or self._pos < len(self._buf):
            return False
        # An idle connection is never readable: readiness means EOF or stray bytes.
        # (MSG_DONTWAIT cannot be used; Python waits out the socket timeout first.)
        try:
            if hasattr(select, "poll"):
                poller = select.poll()
                poller.register(self._sock, select.POLLIN)
                return not poller.poll(0)
            readable, _, _ = select.select([self._sock], [], [], 0)
            return not readable
        except (OSError, ValueError):
            return False

    def send(self, commands: list[list[bytes]]) -> None:
        out = bytearray()
        for args in commands:
            out += b"*%d\r\n" % len(args)
            for arg in args:
                out += b"$%d\r\n" % len(arg)
                out += arg
                out += b"\r\n"
        try:
            self._sock.sendall(out)
        except BaseException:
            self.broken = True
            raise

    def read_reply(self) -> Reply:
        try:
            return self._read(0)
        except BaseException:
            self.broken = True
            raise

    def _fill(self) -> None:
        if self._pos:
            del self._buf[: self._pos]
            self._pos = 0
        chunk = self._sock.recv(65536)
        if not chunk:
            raise _RedisUnavailable("redis closed the connection")
        self._buf += chunk

    def _readline(self) -> bytes:
        while True:
            end = self._buf.find(b"\r\n", self._pos)
            if end >= 0:
                line = bytes(self._buf[self._pos : end])
                self._pos = end + 2
                return line
            self._fill()

    def _readexact(self, n: int) -> bytes:
        while len(self._buf) - self._pos < n + 2:
            self._fill()
        data = bytes(self._buf[self._pos : self._pos + n])
        if self._buf[self._pos + n : self._pos + n + 2] != b"\r\n":
            raise _ProtocolError("bulk string not terminated by CRLF")
        self._pos += n + 2
        return data

    def _read(self, depth: int) -> Reply:
        if depth > _MAX_REPLY_DEPTH:
            raise _ProtocolError("reply nested too deeply")
        line = self._readline()
        if not line:
            raise _ProtocolError("empty reply line")
        kind, rest = line[:1], line[1:]
        if kind == b"+":
            return _Status(rest)
        if kind == b"-":
            return _ErrorReply(rest.decode("utf-8", "replace"))
        try:
            number = int(rest)
        except ValueError:
            raise _ProtocolError("malformed length or integer") from None
        if kind == b":":
            return number
        if kind == b"$":
            return None if number < 0 else self._readexact(number)
        if kind == b"*":
            return None if number < 0 else [self._read(depth + 1) for _ in range(number)]
        raise _ProtocolError("unknown RESP2 reply type")

    def close(self) -> None:
        self.broken = True
        with contextlib.suppress(OSError):
            self._sock.close()


class _RedisTarget:
    """Where and how to connect; the password is never shown in ``repr``."""

    def __init__(self, redis_url: str) -> None:
        parts = urllib.parse.urlsplit(redis_url)
        query = urllib.parse.parse_qs(parts.query)
        self.unix_path: str | None = None
        self.host = "127.0.0.1"
        self.port = 6379
        db_text = ""
        if parts.scheme == "redis":
            self.host = parts.hostname or "127.0.0.1"
            try:
                self.port = parts.port or 6379
            except ValueError:
                raise ValueError("redis_url has an invalid port") from None
            db_text = parts.path.lstrip("/")
        elif parts.scheme == "unix":
            if not parts.path:
                raise ValueError("unix:// redis_url needs a socket path")
            self.unix_path = parts.path
        else:
            raise ValueError("redis_url must use the redis:// or unix:// scheme")
        db_text = db_text or query.get("db", ["0"])[0]
        try:
            self.db = int(db_text)
        except ValueError:
            raise ValueError("redis_url has an invalid database number") from None
        self.username = urllib.parse.unquote(parts.username) if parts.username else None
        self.password = urllib.parse.unquote(parts.password) if parts.password else None

    def describe(self) -> str:
        if self.unix_path is not None:
            return f"unix://{self.unix_path}?db={self.db}"
        return f"redis://{self.host}:{self.port}/{self.db}"


class _Pool:
    """A few idle connections reused across requests; each request owns its connection."""

    def __init__(self, target: _RedisTarget, timeout: float) -> None:
        self._target = target
        self._timeout = timeout
        self._lock = threading.Lock()
        self._idle: list[_RedisConnection] = []
        self._live: set[_RedisConnection] = set()
        self._closed = False

    def acquire(self) -> _RedisConnection:
        while True:
            with self._lock:
                if self._closed:
                    raise _RedisUnavailable("server is stopping")
                conn = self._idle.pop() if self._idle else None
            if conn is None:
                break
            if conn.is_alive():
                return conn
            self._discard(conn)
        conn = _RedisConnection(self._target, self._timeout)
        with self._lock:
            if not self._closed:
                self._live.add(conn)
                return conn
        conn.close()
        raise _RedisUnavailable("server is stopping")

    def release(self, conn: _RedisConnection) -> None:
        with self._lock:
            if not conn.broken and not self._closed and len(self._idle) < _MAX_IDLE_CONNECTIONS:
                self._idle.append(conn)
                return
        self._discard(conn)

    def _discard(self, conn: _RedisConnection) -> None:
        with self._lock:
            self._live.discard(conn)
        conn.close()

    def close(self) -> None:
        with self._lock:
            self._closed = True
            conns = list(self._live)
            self._live.clear()
            self._idle.clear()
        for conn in conns:
            conn.close()


def _to_redis_arg(value: Any) -> bytes:
    """Turn one JSON argument into the string Upstash would store for it."""
    if isinstance(value, str):
        try:
            return value.encode("utf-8")
        except UnicodeEncodeError:
            raise _BadRequest("ERR argument is not valid UTF-8 text") from None
    if isinstance(value, bool):
        return b"true" if value else b"false"
    if isinstance(value, int):
        return str(value).encode()
    if isinstance(value, float):
        return repr(value).encode()
    if value is None:
        return b"null"
    try:
        return json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
    except (ValueError, UnicodeEncodeError):
        raise _BadRequest("ERR argument is not valid JSON text") from None


def _parse_command(raw: Any) -> list[bytes]:
    if not isinstance(raw, list) or not raw:
        raise _BadRequest("ERR each command must be a non-empty JSON array")
    return [_to_redis_arg(item) for item in raw]


def _refusal(args: list[bytes]) -> str | None:
    """Say why a command cannot run over REST, or None if it may run."""
    name = args[0].decode("utf-8", "replace").upper()
    shown = name[:64]
    if name in _REFUSED:
        return f"ERR Command is not available over the REST API: '{shown}'"
    if name in _BLOCKING:
        return f"ERR Blocking command is not available over the REST API: '{shown}'"
    if name in ("XREAD", "XREADGROUP"):
        for arg in args[1:]:
            word = arg.upper()
            if word == b"STREAMS":
                break
            if word == b"BLOCK":
                return f"ERR Blocking command is not available over the REST API: '{shown}'"
    if name == "CLIENT" and len(args) > 1 and args[1].upper() == b"REPLY":
        return "ERR Command is not available over the REST API: 'CLIENT REPLY'"
    return None


def _encode(reply: Reply, b64: bool) -> JSONValue:
    """Map a RESP2 reply to JSON, applying Upstash's base64 rules."""
    if isinstance(reply, _Status):
        if not b64 or reply == b"OK":
            return reply.decode("utf-8", "replace")
        return base64.b64encode(reply).decode("ascii")
    if isinstance(reply, bytes):
        return base64.b64encode(reply).decode("ascii") if b64 else reply.decode("utf-8", "replace")
    if isinstance(reply, _ErrorReply):
        # Only nested errors (e.g. inside a Lua table) get here; the client decodes them as text.
        return base64.b64encode(reply.encode("utf-8")).decode("ascii") if b64 else str(reply)
    if isinstance(reply, list):
        return [_encode(item, b64) for item in reply]
    return reply


def _entry(reply: Reply, b64: bool) -> dict[str, JSONValue]:
    if isinstance(reply, _ErrorReply):
        return {"error": str(reply)}
    return {"result": _encode(reply, b64)}


def _redis_failure(exc: BaseException) -> str:
    """Describe a redis I/O failure without echoing anything from the request."""
    if isinstance(exc, _RedisUnavailable):
        detail = str(exc)
    elif isinstance(exc, TimeoutError):
        detail = "timed out"
    elif isinstance(exc, OSError) and exc.errno is not None:
        detail = errno.errorcode.get(exc.errno, str(exc.errno))
    else:
        detail = type(exc).__name__
    return f"ERR failed to talk to redis: {detail}"


class _Handler(http.server.BaseHTTPRequestHandler):
    """Routes the three POST endpoints; nothing from a request is ever logged."""

    protocol_version = "HTTP/1.1"
    server_version = "upstash-rest-test"
    timeout = _IDLE_CLIENT_TIMEOUT
    # Headers and body are separate writes; with Nagle each reply waits for a delayed ACK.
    disable_nagle_algorithm = True
    server: _HTTPServer

    def log_message(self, format: str, *args: Any) -> None:
        return

    def version_string(self) -> str:
        return self.server_version

    def send_error(self, code: int, message: str | None = None, explain: str | None = None) -> None:
        # Covers parse failures and every method without a do_* handler with a JSON body.
        if code == 501:
            code, message = 405, "Method Not Allowed"
        self.close_connection = True
        self._reply(code, {"error": message or "Bad Request"}, allow_post=code == 405)

    def _reply(self, code: int, payload: JSONValue, allow_post: bool = False) -> None:
        body = json.dumps(payload, separators=(",", ":")).encode("ascii")
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        if allow_post:
            self.send_header("Allow", "POST")
        if self.close_connection:
            self.send_header("Connection", "close")
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _read_body(self) -> bytes | None:
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            self.close_connection = True
            self._reply(411, {"error": "ERR chunked request bodies are not supported"})
            return None
        try:
            length = int(self.headers.get("Content-Length", "0"))
        except ValueError:
            length = -1
        if length < 0 or length > _MAX_BODY_BYTES:
            self.close_connection = True
            self._reply(413 if length > 0 else 400, {"error": "ERR bad Content-Length"})
            return None
        return self.rfile.read(length) if length else b""

    def _method_not_allowed(self) -> None:
        if self._read_body() is not None:
            self._reply(405, {"error": "Method Not Allowed"}, allow_post=True)

    do_GET = do_PUT = do_DELETE = do_PATCH = do_OPTIONS = do_HEAD = _method_not_allowed

    def do_POST(self) -> None:
        body = self._read_body()
        if body is None:
            return
        path = re.sub(r"/{2,}", "/", urllib.parse.urlsplit(self.path).path)
        if len(path) > 1:
            path = path.rstrip("/")
        if path not in ("", "/", "/pipeline", "/multi-exec"):
            self._reply(404, {"error": "Not Found"})
            return
        if not self.server.owner._authorized(self.headers.get("Authorization")):
            self._reply(401, {"error": "Unauthorized"})
            return
        b64 = self.headers.get("Upstash-Encoding", "").strip().lower() == "base64"
        try:
            try:
                payload = json.loads(body)
            except (ValueError, RecursionError):
                raise _BadRequest("ERR failed to parse the request body as JSON") from None
            if path in ("", "/"):
                code, result = self.server.owner._single(payload, b64)
            elif path == "/pipeline":
                code, result = self.server.owner._pipeline(payload, b64)
            else:
                code, result = self.server.owner._multi_exec(payload, b64)
        except _BadRequest as exc:
            code, result = 400, {"error": str(exc)}
        except Exception:
            # A bug here must still give the client JSON, and must not print the request.
            code, result = 500, {"error": "ERR internal error in the test REST server"}
        self._reply(code, result)


class _HTTPServer(http.server.HTTPServer):
    """Thread per connection, with every live client socket tracked so stop() can end it."""

    request_queue_size = 64

    def __init__(self, owner: UpstashRestServer, address: tuple[str, int]) -> None:
        self.owner = owner
        self._conn_lock = threading.Lock()
        self._conns: dict[threading.Thread, socket.socket] = {}
        self._stopping = False
        if ":" in address[0]:
            self.address_family = socket.AF_INET6
        super().__init__(address, _Handler)

    def server_bind(self) -> None:
        # HTTPServer.server_bind does a reverse DNS lookup that can stall for seconds.
        socketserver.TCPServer.server_bind(self)
        host, port = self.server_address[:2]
        self.server_name = str(host)
        self.server_port = int(port)

    def process_request(self, request: Any, client_address: Any) -> None:
        thread = threading.Thread(
            target=self._serve_connection,
            args=(request, client_address),
            name="upstash-rest-conn",
            daemon=True,
        )
        with self._conn_lock:
            if self._stopping:
                self.shutdown_request(request)
                return
            self._conns[thread] = request
        thread.start()

    def _serve_connection(self, request: socket.socket, client_address: Any) -> None:
        try:
            self.finish_request(request, client_address)
        except Exception:
            pass
        finally:
            with self._conn_lock:
                self._conns.pop(threading.current_thread(), None)
            self.shutdown_request(request)

    def handle_error(self, request: Any, client_address: Any) -> None:
        # The default prints a traceback to stderr; tests must stay quiet.
        return

    def close_connections(self, timeout: float) -> None:
        with self._conn_lock:
            self._stopping = True
            for sock in self._conns.values():
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)
            threads = list(self._conns)
        for thread in threads:
            thread.join(timeout)


class UpstashRestServer(ManagedServer):
    """Serve the Upstash REST protocol on localhost, forwarding to a real redis-server.

    Use it as ``with UpstashRestServer(redis_url, token) as srv:`` (or ``async with``)
    and point ``upstash_redis.asyncio.Redis(url=srv.url, token=srv.token, rest_retries=0)``
    at it. ``port=0`` picks a free port. ``socket_timeout`` bounds every redis call so a
    vanished redis turns into a JSON error instead of a hang.
    """

    def __init__(
        self,
        redis_url: str,
        token: str,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        socket_timeout: float = 5.0,
    ) -> None:
        if not isinstance(token, str) or not token:
            raise ValueError("token must be a non-empty string")
        if socket_timeout <= 0:
            raise ValueError("socket_timeout must be positive")
        self._target = _RedisTarget(redis_url)
        self._token = token
        self._token_bytes = token.encode("utf-8")
        self._host = host
        self._port = port
        self._socket_timeout = socket_timeout
        self._lock = threading.Lock()
        self._httpd: _HTTPServer | None = None
        self._thread: threading.Thread | None = None
        self._pool: _Pool | None = None

    def __repr__(self) -> str:
        where = self.url if self._httpd is not None else "stopped"
        return f"<UpstashRestServer {where} -> {self._target.describe()}>"

    @property
    def token(self) -> str:
        return self._token

    @property
    def url(self) -> str:
        """Base URL for the client; only known once started, since port 0 binds lazily."""
        httpd = self._httpd
        if httpd is None:
            raise RuntimeError("UpstashRestServer is not running")
        host = self._host
        if ":" in host:
            host = f"[{host}]"
        return f"http://{host}:{httpd.server_port}"

    @property
    def port(self) -> int:
        httpd = self._httpd
        if httpd is None:
            raise RuntimeError("UpstashRestServer is not running")
        return httpd.server_port

    def start(self) -> None:
        with self._lock:
            if self._httpd is not None:
                raise RuntimeError("UpstashRestServer is already running")
            pool = _Pool(self._target, self._socket_timeout)
            httpd = _HTTPServer(self, (self._host, self._port))
            thread = threading.Thread(
                target=httpd.serve_forever,
                kwargs={"poll_interval": 0.05},
                name="upstash-rest-server",
                daemon=True,
            )
            self._pool, self._httpd, self._thread = pool, httpd, thread
            thread.start()

    def stop(self) -> None:
        """Stop accepting, end open keep-alive connections, and close every redis socket."""
        with self._lock:
            httpd, thread, pool = self._httpd, self._thread, self._pool
            self._httpd = self._thread = self._pool = None
        if httpd is None:
            return
        httpd.shutdown()
        httpd.server_close()
        if thread is not None:
            thread.join()
        httpd.close_connections(self._socket_timeout * 2 + 1)
        if pool is not None:
            pool.close()

    def _authorized(self, header: str | None) -> bool:
        if not header:
            return False
        scheme, _, credential = header.strip().partition(" ")
        if scheme.lower() != "bearer":
            return False
        return hmac.compare_digest(credential.strip().encode("utf-8"), self._token_bytes)

    def _run(self, commands: list[list[bytes]]) -> list[Reply]:
        """Send commands in one write on one pooled connection and read one reply each."""
        pool = self._pool
        if pool is None:
            raise _RedisUnavailable("server is stopping")
        conn = pool.acquire()
        try:
            conn.send(commands)
            return [conn.read_reply() for _ in commands]
        finally:
            pool.release(conn)

    def _call(self, commands: list[list[bytes]]) -> list[Reply] | str:
        try:
            return self._run(commands)
        except (OSError, _ProtocolError) as exc:
            return _redis_failure(exc)

    def _single(self, payload: Any, b64: bool) -> tuple[int, JSONValue]:
        args = _parse_command(payload)
        refused = _refusal(args)
        if refused is not None:
            return 400, {"error": refused}
        replies = self._call([args])
        if isinstance(replies, str):
            return 500, {"error": replies}
        reply = replies[0]
        if isinstance(reply, _ErrorReply):
            return 400, {"error": str(reply)}
        return 200, {"result": _encode(reply, b64)}

    def _parse_batch(self, payload: Any) -> list[list[bytes]]:
        if not isinstance(payload, list):
            raise _BadRequest("ERR the request body must be a JSON array of commands")
        return [_parse_command(item) for item in payload]

    def _pipeline(self, payload: Any, b64: bool) -> tuple[int, JSONValue]:
        commands = self._parse_batch(payload)
        refusals = [_refusal(args) for args in commands]
        runnable = [args for args, why in zip(commands, refusals, strict=True) if why is None]
        replies = self._call(runnable) if runnable else []
        if isinstance(replies, str):
            return 500, {"error": replies}
        it = iter(replies)
        entries: list[JSONValue] = []
        for why in refusals:
            entries.append({"error": why} if why is not None else _entry(next(it), b64))
        return 200, entries

    def _multi_exec(self, payload: Any, b64: bool) -> tuple[int, JSONValue]:
        commands = self._parse_batch(payload)
        for args in commands:
            refused = _refusal(args)
            if refused is not None:
                return 400, {"error": refused}
        if not commands:
            return 200, []
        # One write holding MULTI..EXEC means redis always reaches EXEC, so a connection
        # is never left inside MULTI; any I/O failure discards the connection anyway.
        replies = self._call([[b"MULTI"], *commands, [b"EXEC"]])
        if isinstance(replies, str):
            return 500, {"error": replies}
        result = replies[-1]
        if isinstance(result, _ErrorReply):
            queued_errors = [r for r in replies[1:-1] if isinstance(r, _ErrorReply)]
            message = str(result)
            if queued_errors:
                message = f"{message} ({queued_errors[0]})"
            return 400, {"error": message}
        if not isinstance(result, list) or len(result) != len(commands):
            return 500, {"error": "ERR unexpected EXEC reply from redis"}
        return 200, [_entry(reply, b64) for reply in result]
