"""The public HTTP listener and its limits: slow or idle connections cannot starve real callbacks.

On its own, aiohttp bounds neither how long a client may take to send its request headers or body, nor (for an
hour) an idle keep-alive connection, and asyncio accepts connections until the process runs out of descriptors —
after which every accept() fails, asyncio logs a traceback for each attempt (thousands a second), and no callback
gets in. Here aiohttp still speaks HTTP, but behind this module's accept loop, and every connection is bounded:

- **Deadlines.** Request headers must be complete within `header_timeout` of connecting (on a keep-alive
  connection: of the next request's first byte); a body within `body_timeout` of its headers; an idle keep-alive
  connection closes after `keepalive_timeout`. A connection past its deadline is cut. A handler that was reading
  the body then finds the client gone, which the middleware answers quietly (no "Error handling request" traceback).
- **A cap.** At most `cap` connections: the soft RLIMIT_NOFILE (first raised to the hard limit, up to `nofile`)
  minus `reserve` descriptors kept for everything else. At the cap, a new connection closes one to take its place:
  the one longest without a request in progress (a slowloris, an idle keep-alive), or failing that, the one whose
  request body has been arriving longest — never a request being handled. Only a connection in that state for
  `evict_after` is closed, so each new one has that long to send its request however fast others connect. With
  nothing to close, new connections wait in the kernel's queue (`backlog`) until a slot frees.
- **One accept at a time, only with room.** accept() never meets the descriptor limit; if something else
  exhausts it, the loop pauses and retries instead of spinning.

The middleware (the hook aiohttp calls once it has parsed a request's headers) tells when a request begins and
ends; the rest is the asyncio protocol that wraps aiohttp's `RequestHandler` on each connection.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
import resource
import socket
from dataclasses import dataclass
from typing import Any

from aiohttp import web
from aiohttp.typedefs import Handler, Middleware

log = logging.getLogger(__name__)

# accept() errors about that one connection (accept(2): "treat them like EAGAIN by retrying"): skip it.
_CLIENT_GONE = frozenset({
    errno.ECONNABORTED, errno.EPROTO, errno.EPERM, errno.ENETDOWN, errno.ENETUNREACH, errno.EHOSTDOWN,
    errno.EHOSTUNREACH, errno.ENOPROTOOPT, errno.EOPNOTSUPP,
})  # fmt: skip
_ACCEPT_PAUSE = 0.5  # seconds to wait after any other accept() error (EMFILE, ENFILE, ENOBUFS, ENOMEM: no room)


@dataclass(frozen=True, slots=True)
class ListenerLimits:
    """How long a client may take, and how many connections there may be. Production defaults; tests lower them."""

    header_timeout: float = 5.0  # seconds to send complete request headers
    body_timeout: float = 10.0  # seconds from complete headers to a complete body (callbacks are ≤ 64 KB)
    keepalive_timeout: float = 15.0  # seconds an idle keep-alive connection stays open
    # Descriptors kept for all but the public connections: the channels' clients (aiohttp's pool: ≤ 100), SQLite
    # (two connections and their WAL files: ~8), the control socket and its clients (~32), stdio, the log, epoll
    # and asyncio's self-pipe (~10), and room to spare — plus one per answer in flight (the model client's
    # connection), added at start from max_concurrent_answers. Never more than half the limit, so that a low limit
    # still leaves some connections.
    reserve: int = 224
    nofile: int = 65536  # the soft RLIMIT_NOFILE is raised to this at start, if the hard limit allows
    max_connections: int | None = None  # None: from RLIMIT_NOFILE and `reserve`; tests set a number
    evict_after: float = 0.25  # at the cap, a connection in the same state this long may be closed for a new one
    backlog: int = 512  # connections the kernel queues until accepted (its limit, net.core.somaxconn, applies)


def open_files_limit(want: int) -> int:
    """The soft RLIMIT_NOFILE, first raised towards `want` if the hard limit allows (systemd's default is 1024)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = want if hard == resource.RLIM_INFINITY else min(want, hard)
    if soft != resource.RLIM_INFINITY and soft < target:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
            soft = target
        except (ValueError, OSError) as exc:
            log.warning("listener: could not raise the open-files limit from %d to %d: %s", soft, target, exc)
    return want if soft == resource.RLIM_INFINITY else soft


def connection_cap(limits: ListenerLimits, nofile: int) -> int:
    """How many public connections fit beside the `reserve`, with `nofile` descriptors in all."""
    if limits.max_connections is not None:
        return max(1, limits.max_connections)
    return max(1, nofile - min(limits.reserve, nofile // 2))


class _Connection(asyncio.Protocol):
    """One accepted connection: aiohttp's RequestHandler speaks HTTP on it; this holds its deadline."""

    def __init__(self, listener: PublicListener, handler: web.RequestHandler, peer: str, now: float) -> None:
        self.listener = listener
        self.handler = handler
        self.peer = peer
        self.since = now  # loop time of the last change: connected, request begun, request ended
        self.transport: asyncio.Transport | None = None
        self.request: web.BaseRequest | None = None  # the request in progress, if any
        self.finished = 0  # requests answered on this connection
        self.heard = False  # bytes received since the last request ended (or since connecting)
        self.closed = False
        self._timer: asyncio.TimerHandle | None = None
        self._deadline = now  # loop time the current phase must end by
        self._phase = "headers"

    @property
    def reading_body(self) -> bool:
        return self.request is not None and not self.request.content.is_eof()

    # --- asyncio.Protocol: everything goes on to aiohttp ------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        self.handler.connection_made(transport)
        if self.closed:  # evicted before asyncio got this far
            transport.abort()
        else:
            self._arm()

    def data_received(self, data: bytes) -> None:
        if self.request is None and not self.heard:
            self.heard = True
            if self.finished:
                self._arm()  # keep-alive: the next request has begun, its headers are now on the clock
        self.handler.data_received(data)

    def eof_received(self) -> None:
        self.handler.eof_received()  # None: the transport closes itself once the client has sent everything

    def pause_writing(self) -> None:
        self.handler.pause_writing()

    def resume_writing(self) -> None:
        self.handler.resume_writing()

    def connection_lost(self, exc: BaseException | None) -> None:
        self.closed = True
        self._disarm()
        self.listener.forget(self)
        self.handler.connection_lost(exc)

    # --- the request cycle, as told by the listener's middleware ----------------------------------------------
    def begin(self, request: web.BaseRequest, now: float) -> None:
        self.request, self.since = request, now
        self._arm()

    def end(self, now: float) -> None:
        self.request, self.since = None, now
        self.finished += 1
        self.heard = False
        if not self.closed:
            self._arm()

    # --- deadlines ---------------------------------------------------------------------------------------------
    def _arm(self) -> None:
        """Set the deadline of the current phase: headers, body, or idle keep-alive.

        One timer per connection, moved only when the new deadline comes before it; a later one is looked at when
        the timer fires. A request moves the deadline three times, and a new timer each time was a tenth of a
        callback's cost in bench/callback.py; now it is one timer per request on a keep-alive connection."""
        limits = self.listener.limits
        if self.request is not None:
            delay, self._phase = limits.body_timeout, "body"
        elif self.finished and not self.heard:
            delay, self._phase = limits.keepalive_timeout, "idle"
        else:
            delay, self._phase = limits.header_timeout, "headers"
        loop = asyncio.get_running_loop()
        self._deadline = loop.time() + delay
        if self._timer is None or self._timer.when() > self._deadline:
            self._disarm()
            self._timer = loop.call_at(self._deadline, self._due, self._deadline)

    def _disarm(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _due(self, when: float) -> None:
        """The timer fired: the phase is over if its deadline is still the one the timer was set for."""
        self._timer = None
        if self._deadline > when:
            self._timer = asyncio.get_running_loop().call_at(self._deadline, self._due, self._deadline)
        else:
            self._expire(self._phase)

    def _expire(self, phase: str) -> None:
        limits = self.listener.limits
        if phase == "body":
            if not self.reading_body:
                return  # the body is all here: the handler may take its time
            log.info("listener: cut a connection from %s: request body not complete within %g s",
                     self.peer, limits.body_timeout)  # fmt: skip
        elif phase == "headers":
            log.info("listener: closed a connection from %s: no complete request headers within %g s",
                     self.peer, limits.header_timeout)  # fmt: skip
        else:
            log.debug("listener: closed an idle keep-alive connection from %s", self.peer)
        self.close()

    def close(self) -> None:
        """Close at once (abort: a client that does not read must not keep the descriptor)."""
        self.closed = True
        self._disarm()
        self.listener.forget(self)
        if self.transport is not None:
            self.transport.abort()


class PublicListener:
    """The callback's HTTP listener: `await start(host, port)`, `await close()`."""

    def __init__(self, app: web.Application, limits: ListenerLimits, **runner_kwargs: Any) -> None:
        self.limits = limits
        self.cap = 0
        self._connections: dict[web.RequestHandler, _Connection] = {}
        self._idle: dict[_Connection, None] = {}  # no request in progress; longest so first
        self._busy: dict[_Connection, None] = {}  # a request in progress; longest so first
        self._room = asyncio.Event()  # set when a connection closes or a request ends
        self._sockets: list[socket.socket] = []
        self._accepting: list[asyncio.Task[None]] = []
        app.middlewares.insert(0, self._middleware())
        self._runner = web.AppRunner(app, keepalive_timeout=limits.keepalive_timeout, **runner_kwargs)

    @property
    def connections(self) -> int:
        return len(self._connections)

    async def start(self, host: str, port: int) -> None:
        nofile = open_files_limit(self.limits.nofile)
        self.cap = connection_cap(self.limits, nofile)
        await self._runner.setup()
        self._sockets = await _bind(host, port, self.limits.backlog)
        self._accepting = [asyncio.create_task(self._accept(s), name="accept") for s in self._sockets]
        lim = self.limits
        log.info(
            "listener: up to %d connections (open-files limit %d); request headers within %g s, bodies within %g s, "
            "idle keep-alive %g s", self.cap, nofile, lim.header_timeout, lim.body_timeout, lim.keepalive_timeout,
        )  # fmt: skip

    async def close(self) -> None:
        """Stop accepting, then let aiohttp finish the requests in flight and close every connection."""
        for task in self._accepting:
            task.cancel()
        await asyncio.gather(*self._accepting, return_exceptions=True)
        for sock in self._sockets:
            sock.close()
        self._accepting, self._sockets = [], []
        await self._runner.cleanup()
        for conn in list(self._connections.values()):
            conn.close()

    # --- admission ---------------------------------------------------------------------------------------------
    async def _accept(self, sock: socket.socket) -> None:
        loop = asyncio.get_running_loop()
        while True:
            await self._wait_for_room()
            try:
                client, addr = await loop.sock_accept(sock)
            except OSError as exc:
                if exc.errno not in _CLIENT_GONE:
                    log.error("listener: cannot accept connections (%s); %d open; retrying in %g s",
                              exc.strerror, len(self._connections), _ACCEPT_PAUSE)  # fmt: skip
                    await asyncio.sleep(_ACCEPT_PAUSE)
                continue
            peer = str(addr[0]) if isinstance(addr, tuple) else str(addr)
            try:
                await self._wait_for_room()  # again: it may have gone while accept() waited (one socket held)
                await self._admit(client, peer)
            except Exception:  # never let one connection stop the accept loop
                log.exception("listener: could not take a connection from %s", peer)
                client.close()
            except BaseException:  # cancelled: the listener is closing
                client.close()
                raise

    def _victim(self) -> _Connection | None:
        """The connection a new one may replace: longest without a request, else longest receiving a body."""
        latest = asyncio.get_running_loop().time() - self.limits.evict_after
        oldest = next(iter(self._idle), None)
        if oldest is not None and oldest.since <= latest:
            return oldest
        for conn in self._busy:
            if conn.since > latest:
                return None
            if conn.reading_body:
                return conn
        return None

    async def _wait_for_room(self) -> None:
        """Return once a new connection can be admitted: below the cap, or with a connection to replace."""
        warned = False
        while len(self._connections) >= self.cap and self._victim() is None:
            if not warned and not self._idle:
                log.warning("listener: all %d connections have a request in progress; new ones wait", self.cap)
                warned = True
            self._room.clear()
            with contextlib.suppress(TimeoutError):  # a candidate may come of age meanwhile: look again
                await asyncio.wait_for(self._room.wait(), self.limits.evict_after)

    async def _admit(self, sock: socket.socket, peer: str) -> None:
        """Serve `sock`, first closing a connection to make room if at the cap (called right after room was found,
        with no await between: the victim is still there)."""
        loop = asyncio.get_running_loop()
        victim = self._victim() if len(self._connections) >= self.cap else None
        if victim is not None:
            what = "a request body still arriving" if victim.request is not None else "the one longest idle"
            log.warning("listener: at the cap of %d connections: closed %s (from %s) for a new one",
                        self.cap, what, victim.peer)  # fmt: skip
            victim.close()
        server = self._runner.server
        assert server is not None
        conn = _Connection(self, server(), peer, loop.time())
        self._connections[conn.handler] = conn
        self._idle[conn] = None
        try:
            await loop.connect_accepted_socket(lambda: conn, sock)
        except OSError as exc:
            log.debug("listener: dropped a connection from %s: %s", peer, exc)
            self.forget(conn)
            sock.close()

    def forget(self, conn: _Connection) -> None:
        if self._connections.pop(conn.handler, None) is not None:
            self._idle.pop(conn, None)
            self._busy.pop(conn, None)
            self._room.set()

    def _middleware(self) -> Middleware:
        """Tells each connection when its request begins and ends; a client gone mid-request is not an error."""

        @web.middleware
        async def track(request: web.Request, handler: Handler) -> web.StreamResponse:
            loop = asyncio.get_running_loop()
            conn = self._connections.get(request.protocol)  # None: closed before aiohttp got here
            if conn is not None:
                self._idle.pop(conn, None)
                self._busy[conn] = None
                conn.begin(request, loop.time())
            try:
                return await handler(request)
            except ConnectionError:
                if request.transport is not None:
                    raise
                log.debug("listener: %s went away during %s %s", request.remote, request.method, request.path)
                return web.Response(status=400)  # never sent: aiohttp drops it quietly
            finally:
                if conn is not None:
                    conn.end(loop.time())
                    if conn.handler in self._connections:  # still open: now the one most recently busy
                        self._busy.pop(conn, None)
                        self._idle[conn] = None
                        self._room.set()

        return track


async def _bind(host: str, port: int, backlog: int) -> list[socket.socket]:
    """Listening sockets on every address of `host` ("" or "0.0.0.0": all), as asyncio's create_server makes them."""
    loop = asyncio.get_running_loop()
    infos = await loop.getaddrinfo(host or None, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    sockets: list[socket.socket] = []
    try:
        for family, kind, proto, _, address in dict.fromkeys(infos):
            sock = socket.socket(family, kind, proto)
            sockets.append(sock)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            if family == socket.AF_INET6:
                sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            try:
                sock.bind(address)
            except OSError as err:
                message = f"error while attempting to bind on address {address!r}: {err.strerror}"
                raise OSError(err.errno, message) from None
            sock.listen(backlog)
            sock.setblocking(False)
    except BaseException:
        for sock in sockets:
            sock.close()
        raise
    return sockets
