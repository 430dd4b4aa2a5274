"""The API's HTTP plumbing: its JSON error shape, the exception handlers that give every error
that shape, the API key check (401), the request body's size and time limits (413, 408) and the
access log (one line per request).

Every error is ``{"status": ..., "error": "one line", "field": "captions.0" | null}``; a 422
adds ``count`` (failing fields) and ``details``, the first :data:`MAX_ERROR_DETAILS` of them, so
that the answer to a hostile body stays small whatever the body holds."""

import asyncio
import hmac
import logging
import time
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException

from stackgan.serve.batching import Counters

logger = logging.getLogger(__name__)

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

MAX_ERROR_DETAILS = 5  # failing fields listed in a 422; `count` says how many there were
CLIENT_CLOSED = 499  # nginx's status for "the client closed the connection": the access log's


class ClientGoneError(Exception):
    """The client disconnected before its answer was ready (logged as 499, nothing is sent)."""


class ApiError(Exception):
    """A client error: status, one-line message, and the request field at fault."""

    def __init__(
        self,
        status: int,
        message: str,
        field: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.field = field
        self.headers = headers


def error_response(
    status: int,
    message: str,
    field: str | None = None,
    details: list[dict[str, Any]] | None = None,
    headers: dict[str, str] | None = None,
) -> JSONResponse:
    body: dict[str, Any] = {"status": status, "error": message, "field": field}
    if details:
        body["count"] = len(details)
        body["details"] = details[:MAX_ERROR_DETAILS]
    return JSONResponse(body, status_code=status, headers=headers)


def field_name(loc: Any) -> str:
    """pydantic's ``("body", "captions", 0)`` -> ``captions.0``."""
    parts = [str(p) for p in loc]
    if parts and parts[0] == "body":
        parts = parts[1:]
    return ".".join(parts) or "body"


class ApiKey:
    """Refuse a request to a ``/v1`` route without the API key (401), before its body is read:
    a client without the key learns nothing about its body (not even that it is malformed
    JSON) and costs no parsing."""

    def __init__(self, app: ASGIApp, key: str) -> None:
        self.app = app
        self.key = key.encode("ascii")  # ServeConfig allows printable ASCII only

    def _given(self, scope: Scope) -> bytes | None:
        headers = dict(scope.get("headers") or [])
        given = headers.get(b"x-api-key")
        auth = headers.get(b"authorization", b"")
        if given is None and auth[:7].lower() == b"bearer ":
            given = auth[7:].strip()
        return given

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = str(scope.get("path", ""))
        if scope["type"] == "http" and (path == "/v1" or path.startswith("/v1/")):
            given = self._given(scope)
            if given is None or not hmac.compare_digest(given, self.key):
                response = error_response(
                    401,
                    "missing or wrong API key (send Authorization: Bearer KEY or X-API-Key: KEY)",
                    "authorization",
                    headers={"WWW-Authenticate": "Bearer"},
                )
                await response(scope, receive, send)
                return
        await self.app(scope, receive, send)


class BodyLimit:
    """Refuse a request body over ``limit`` bytes with 413, by its Content-Length when it has
    one (before reading anything), else while it streams in; and one not complete within
    ``timeout_s`` of the request's start with 408 (a client trickling its body would otherwise
    hold its connection, and a place under uvicorn's connection limit, for ever)."""

    def __init__(self, app: ASGIApp, limit: int, timeout_s: float = 30.0) -> None:
        self.app = app
        self.limit = limit
        self.timeout_s = timeout_s

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = dict(scope.get("headers") or [])
        length = headers.get(b"content-length")
        too_big = f"the request body is over the limit of {self.limit} bytes"
        if length is not None:
            try:
                declared = int(length)
            except ValueError:
                await error_response(400, "bad Content-Length header", "body")(scope, receive, send)
                return
            if declared > self.limit:
                await error_response(413, too_big, "body")(scope, receive, send)
                return
        seen = 0
        deadline = asyncio.get_running_loop().time() + self.timeout_s
        complete = False

        async def counted() -> Message:
            nonlocal seen, complete
            if complete:  # the body is in: what is left to receive is the disconnect, unbounded
                return await receive()
            left = deadline - asyncio.get_running_loop().time()
            try:
                message = await asyncio.wait_for(receive(), max(left, 0.0))
            except TimeoutError:
                raise HTTPException(  # raised through the body read, like the 413 below
                    408,
                    f"the request body did not arrive within {self.timeout_s:g} s",
                    headers={"Connection": "close"},
                ) from None
            complete = message["type"] != "http.request" or not message.get("more_body", False)
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.limit:  # FastAPI re-raises an HTTPException from the body read
                    raise HTTPException(413, too_big)
            return message

        await self.app(scope, counted, send)


class AccessLog:
    """One log line per request (method, path, status, latency, batch size) and the counters
    by status."""

    def __init__(self, app: ASGIApp, counters: Counters) -> None:
        self.app = app
        self.counters = counters

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        t0 = time.perf_counter()
        status = 500  # if the app fails before it answers, Starlette answers 500

        async def send_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_status)
        finally:
            ms = (time.perf_counter() - t0) * 1000
            self.counters.count_response(status)
            batch = (scope.get("state") or {}).get("batch_images")
            logger.info(
                "%s %s %d %.1f ms%s",
                scope.get("method", "-"),
                scope.get("path", "-"),
                status,
                ms,
                f" batch={batch}" if batch is not None else "",
            )


def _msg(error: dict[str, Any]) -> str:
    """pydantic's message, without the prefix it puts on our validators' own messages."""
    return str(error["msg"]).removeprefix("Value error, ")


def add_error_handlers(app: FastAPI) -> None:
    """Answer every error in the API's JSON shape: ours (:class:`ApiError`), pydantic's
    (422 naming the field; malformed JSON is a 400), Starlette's (404, 405, 413, ...) and
    anything unexpected (500, logged with its traceback)."""

    @app.exception_handler(ApiError)
    async def on_api_error(_: Request, exc: ApiError) -> JSONResponse:
        return error_response(exc.status, exc.message, exc.field, headers=exc.headers)

    @app.exception_handler(ClientGoneError)
    async def on_client_gone(_: Request, exc: ClientGoneError) -> JSONResponse:
        # nobody reads it (uvicorn drops a response to a closed connection); the access log
        # and the counters see 499, not the 200 the work would have been
        return error_response(CLIENT_CLOSED, str(exc) or "the client closed the connection")

    @app.exception_handler(RequestValidationError)
    async def on_invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        errors: list[dict[str, Any]] = [dict(e) for e in exc.errors()]
        details = [{"field": field_name(e["loc"]), "message": _msg(e)} for e in errors]
        first: dict[str, Any] = errors[0] if errors else {"type": "", "loc": ("body",), "msg": "?"}
        if first["type"] == "json_invalid":  # not JSON at all: a 400, not a field's fault
            ctx = first.get("ctx") or {}
            where = f" at position {first['loc'][-1]}" if len(first["loc"]) > 1 else ""
            return error_response(
                400, f"malformed JSON{where}: {ctx.get('error', 'invalid')}", "body"
            )
        field = field_name(first["loc"])
        message = f"{field}: {_msg(first)}"
        ctype = request.headers.get("content-type", "")
        if tuple(first["loc"]) == ("body",) and "json" not in ctype.lower():
            # without a JSON Content-Type FastAPI reads the body as a string ("Input should be a
            # valid dictionary"): say what to send (curl -d sends form encoding by default)
            message += f" (send JSON with Content-Type: application/json; got {ctype or 'none'})"
        return error_response(422, message, field, details)

    @app.exception_handler(HTTPException)
    async def on_http_error(_: Request, exc: HTTPException) -> JSONResponse:
        # FastAPI's own errors (e.g. a body it could not parse, 404, 405) in the same JSON shape
        field = "body" if exc.status_code in (400, 408, 413) else None
        headers = dict(exc.headers) if exc.headers else None
        return error_response(exc.status_code, str(exc.detail), field, headers=headers)

    @app.exception_handler(Exception)
    async def on_internal(_: Request, exc: Exception) -> JSONResponse:
        # a bug or a failing model, not the client's fault: logged with its traceback, and
        # answered in the API's JSON shape rather than as plain text
        logger.error("internal error", exc_info=exc)
        return error_response(500, f"internal error ({type(exc).__name__}); see the server log")
