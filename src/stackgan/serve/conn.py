"""A header deadline for uvicorn's connections: silent and slow clients are closed.

uvicorn closes an idle keep-alive connection after ``timeout_keep_alive`` and caps a header's
size (h11, 16 KiB), but a fresh connection that sends nothing, or half a header, byte by byte,
stays open for ever, and each one counts against ``limit_concurrency``: a few hundred silent
sockets and every client gets uvicorn's 503. :class:`DeadlineH11Protocol` is uvicorn's h11
protocol with one timer: from the moment a connection opens, or its last response is sent, it
has ``header_timeout_s`` to deliver a complete request header. One that sent nothing is closed
quietly (as keep-alive does); one that sent part of a header gets a JSON 408 and is closed.
And when a new connection finds the server at its connection limit, the connections that have
waited longest for a header (idle or slow) are closed to make room, so that silent sockets
cannot starve real clients even within their deadline.

The body's deadline is the app's (:class:`stackgan.serve.middleware.BodyLimit`, a JSON 408 in
the access log); once the body is in, the request runs as long as its generation takes.
"""

import asyncio
import json
import logging
from typing import Any

from uvicorn.protocols.http.h11_impl import H11Protocol

logger = logging.getLogger(__name__)


def _timeout_response(why: str) -> bytes:
    body = json.dumps({"status": 408, "error": why, "field": None}).encode()
    head = (
        "HTTP/1.1 408 Request Timeout\r\ncontent-type: application/json\r\n"
        f"content-length: {len(body)}\r\nconnection: close\r\n\r\n"
    )
    return head.encode("ascii") + body


class DeadlineH11Protocol(H11Protocol):
    """uvicorn's h11 protocol, with a deadline on each request's header.

    uvicorn builds one per connection; :func:`deadline_protocol` sets the timeouts on a
    subclass, since uvicorn passes its own arguments only.
    """

    header_timeout_s = 10.0
    keep_alive_s = 5.0

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # uvicorn's own idle keep-alive timer, which its Config types as whole seconds
        self.timeout_keep_alive = self.keep_alive_s  # type: ignore[assignment]
        self._deadline: asyncio.TimerHandle | None = None
        self._received = 0  # bytes of the header being waited for
        self._waiting_since = 0.0  # loop time the header clock started

    def _waiting_for_header(self) -> bool:
        return self.cycle is None or self.cycle.response_complete

    def _arm(self) -> None:
        """Start the header clock (the previous request, if any, is answered)."""
        self._disarm()
        self._received = 0
        self._waiting_since = self.loop.time()
        self._deadline = self.loop.call_later(self.header_timeout_s, self._expired)

    def _disarm(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None

    def _expired(self) -> None:
        self._deadline = None
        if not self.transport.is_closing() and self._waiting_for_header():
            self._close(f"no complete request header within {self.header_timeout_s:g} s")

    def _close(self, why: str) -> None:
        if self._received:  # part of a header: say why before closing
            self.transport.write(_timeout_response(why))
        host = self.client[0] if self.client else "?"
        logger.info("closed a connection from %s: %s (%d bytes)", host, why, self._received)
        self._disarm()
        self.transport.close()

    def _make_room(self) -> None:
        """At the connection limit uvicorn answers every new request with 503: close the
        connections that have waited longest for a header (not this one) until there is room.
        Closing happens at once; the set shrinks when the loop runs their ``connection_lost``,
        before this connection's first data."""
        limit = self.limit_concurrency
        if limit is None:
            return
        # those already closing leave the set before this connection's first request is read
        live = [c for c in self.connections if not c.transport.is_closing()]
        excess = len(live) - limit + 1
        if excess <= 0:
            return
        idle = [
            c
            for c in live
            if isinstance(c, DeadlineH11Protocol) and c is not self and c._waiting_for_header()
        ]
        for c in sorted(idle, key=lambda c: c._waiting_since)[:excess]:
            c._close("closed to make room: the server is at its connection limit")

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm()
        self._make_room()

    def data_received(self, data: bytes) -> None:
        waiting = self._waiting_for_header()
        super().data_received(data)
        if waiting and self._waiting_for_header():
            self._received += len(data)  # still no complete header: the clock keeps running
        elif not self._waiting_for_header():
            self._disarm()  # a request is running: its body has the app's own deadline

    def on_response_complete(self) -> None:
        super().on_response_complete()
        if not self.transport.is_closing() and self._waiting_for_header():
            self._arm()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)


def deadline_protocol(header_timeout_s: float, keep_alive_s: float) -> type[DeadlineH11Protocol]:
    """:class:`DeadlineH11Protocol` with these timeouts, for ``uvicorn.Config(http=...)``."""
    attrs = {"header_timeout_s": header_timeout_s, "keep_alive_s": keep_alive_s}
    return type("DeadlineH11Protocol", (DeadlineH11Protocol,), attrs)
