"""The HTTP API and web page of ``stackgan serve`` (FastAPI on uvicorn).

Routes: ``POST /v1/images``, ``GET /v1/models``, ``GET /healthz``, ``GET /readyz``,
``GET /metrics`` (Prometheus text), the page at ``/`` (static files under ``static/``) and
the OpenAPI page at ``/docs`` (Swagger UI served from the package, :mod:`.docs_assets`). The
app only calls the sampling API, through :mod:`stackgan.serve.batching`; every error a client
can cause is a 4xx in the JSON shape of :mod:`stackgan.serve.middleware`.
"""

import asyncio
import base64
import concurrent.futures
import inspect
import io
import logging
import secrets
import socket
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np
import uvicorn
from fastapi import FastAPI, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import FileResponse, JSONResponse, PlainTextResponse
from fastapi.staticfiles import StaticFiles
from PIL import Image

from stackgan import __version__
from stackgan.serve.batching import (
    BatchOutcome,
    Counters,
    GenRequest,
    MicroBatcher,
    QueueFullError,
    StoppedError,
)
from stackgan.serve.conn import deadline_protocol
from stackgan.serve.docs_assets import add_offline_docs
from stackgan.serve.middleware import (
    AccessLog,
    ApiError,
    ApiKey,
    BodyLimit,
    ClientGoneError,
    Receive,
    add_error_handlers,
)
from stackgan.serve.middleware import error_response as _error
from stackgan.serve.models import ModelEntry
from stackgan.serve.schemas import (
    RANDOM_SEED_BELOW,
    ImagesRequest,
    ImagesResponse,
    ServeConfig,
    StageImages,
    images_request_model,
)
from stackgan.text import CaptionError, TextEncoderError, check_captions

logger = logging.getLogger(__name__)

PNG_COMPRESS_LEVEL = 3  # measured fastest for these images (and smaller than 1); lossless at any
BUSY: dict[int | str, dict[str, Any]] = {
    503: {"description": "Queue full: try again after Retry-After seconds."}
}
IMAGES_ERRORS: dict[int | str, dict[str, Any]] = {
    **BUSY,
    400: {"description": "Malformed JSON."},
    401: {"description": "Missing or wrong API key (checked before the body is read)."},
    408: {"description": "The request body did not arrive within the body timeout."},
    413: {"description": "Request body over the limit."},
    422: {
        "description": "A field is wrong; `field` names the first, `count` says how many, "
        "`details` lists the first five."
    },
}


def _png(array: np.ndarray, data_uri: bool) -> str:
    buf = io.BytesIO()
    Image.fromarray(array).save(buf, format="PNG", compress_level=PNG_COMPRESS_LEVEL)
    text = base64.b64encode(buf.getvalue()).decode("ascii")
    return "data:image/png;base64," + text if data_uri else text


def _encode_all(arrays: list[np.ndarray], data_uri: bool) -> list[list[str]]:
    return [[_png(a, data_uri) for a in stage] for stage in arrays]


def _check_captions(captions: list[str], entry: ModelEntry) -> list[str]:
    """The library's caption rules (``check_captions``), as a 422 naming the caption."""
    if not entry.sampler.conditional:
        if captions:
            raise ApiError(
                422, f"model {entry.name!r} is unconditional: it takes no captions", "captions"
            )
        return []
    if not captions:
        raise ApiError(422, f"model {entry.name!r} needs at least one caption", "captions")
    try:
        return check_captions(captions)
    except CaptionError as exc:
        raise ApiError(422, str(exc), f"captions.{exc.index}") from exc
    except TextEncoderError as exc:
        raise ApiError(422, str(exc), "captions") from exc


async def _disconnected(receive: Receive) -> None:
    """Return once the client has gone (the body is read: nothing else comes but that)."""
    while (await receive())["type"] != "http.disconnect":
        pass


async def _unless_gone(
    future: concurrent.futures.Future[BatchOutcome], receive: Receive
) -> BatchOutcome:
    """The job's outcome; or, should the client disconnect first, :class:`ClientGoneError`, with
    the job cancelled, so that the worker skips it unless it is already being made."""
    result = asyncio.wrap_future(future)
    gone = asyncio.ensure_future(_disconnected(receive))
    try:
        await asyncio.wait((result, gone), return_when=asyncio.FIRST_COMPLETED)
    finally:
        gone.cancel()
    if result.done():
        return result.result()
    result.cancel()  # wrap_future passes it on: the job's future is cancelled unless running
    raise ClientGoneError("the client closed the connection before its images were made")


@dataclass
class _Job:
    """A request that passed every check: what to make, for which model."""

    name: str
    entry: ModelEntry
    captions: list[str]
    images: int  # in all
    seed: int


def _checked(body: ImagesRequest, models: Mapping[str, ModelEntry], cfg: ServeConfig) -> _Job:
    """``body`` against the models and the limits; raises :class:`ApiError` (422) naming the
    field. A null seed is drawn here."""
    name = body.model or next(iter(models))
    entry = models.get(name)
    if entry is None:
        raise ApiError(
            422, f"unknown model {name!r}; this server has: {', '.join(models)}", "model"
        )
    captions = _check_captions(body.captions, entry)
    if len(captions) > cfg.max_captions:
        raise ApiError(
            422,
            f"{len(captions)} captions; the limit per request is {cfg.max_captions}",
            "captions",
        )
    n = len(captions) * body.num_images if captions else body.num_images
    if n > cfg.max_images:
        what = f"{len(captions)} captions x {body.num_images}" if captions else "num_images"
        raise ApiError(
            422, f"{what} = {n} images; the limit per request is {cfg.max_images}", "num_images"
        )
    seed = body.seed if body.seed is not None else secrets.randbelow(RANDOM_SEED_BELOW)
    return _Job(name, entry, captions, n, seed)


class _Routes:
    """The route handlers, over one app's models, settings, batcher and counters."""

    def __init__(
        self,
        models: Mapping[str, ModelEntry],
        cfg: ServeConfig,
        batcher: MicroBatcher,
        counters: Counters,
    ) -> None:
        self.models = models
        self.cfg = cfg
        self.batcher = batcher
        self.counters = counters
        self.static = Path(str(resources.files("stackgan.serve") / "static"))

    async def images(self, body: ImagesRequest, request: Request) -> ImagesResponse:
        """Generate images from captions (or, for an unconditional model, from noise alone).

        Each caption gets `num_images` images; with `stages`, every stage's images too. The
        response's `seed` with the same captions, model and `num_images` reproduces them.
        """
        t0 = time.perf_counter()
        job = _checked(body, self.models, self.cfg)
        try:
            future = self.batcher.submit(
                job.name, GenRequest(job.captions or None, body.num_images, job.seed)
            )
            outcome = await _unless_gone(future, request.receive)
        except ClientGoneError:
            self.counters.count_abandoned()
            raise
        except QueueFullError as exc:
            raise ApiError(503, str(exc), headers={"Retry-After": str(exc.retry_after)}) from exc
        except StoppedError as exc:
            raise ApiError(503, str(exc), headers={"Retry-After": "5"}) from exc
        except TextEncoderError as exc:  # captions the text encoder refuses: the request's fault
            raise ApiError(422, str(exc), "captions") from exc
        request.state.batch_images = outcome.batch_images  # for the access log
        res = outcome.result
        stages = res.stage_images if body.stages else [res.images]
        encoded = await run_in_threadpool(_encode_all, stages, body.format == "png")
        self.counters.count_images(job.images)
        return _response(body, job, outcome, encoded, t0)

    async def list_models(self) -> dict[str, Any]:
        """The models this server holds (the first is the default) and the request limits."""
        return {
            "default": next(iter(self.models)),
            "models": [e.describe() for e in self.models.values()],
            "limits": self.cfg.limits(),
        }

    async def healthz(self) -> dict[str, Any]:
        """Liveness, and the counters: requests, images, batches, 503s, errors by status."""
        return {
            "status": "ok" if self.batcher.alive else "worker stopped",
            "version": __version__,
            "models": list(self.models),
            "queue": {"depth": self.batcher.depth, "size": self.cfg.queue_size},
            "batching": {"max_batch": self.cfg.max_batch, "max_wait_ms": self.cfg.max_wait_ms},
            "counters": self.counters.snapshot(),
        }

    async def readyz(self) -> JSONResponse:
        """200 when the models are loaded, the worker runs and the queue has room; else 503."""
        depth = self.batcher.depth
        if not self.batcher.alive:
            return _error(503, "the worker is not running", headers={"Retry-After": "5"})
        if depth >= self.cfg.queue_size:
            return _error(503, "the queue is full", headers={"Retry-After": "1"})
        return JSONResponse({"ready": True, "models": list(self.models), "queue_depth": depth})

    async def metrics(self) -> str:
        """The counters in Prometheus' text format."""
        snap = self.counters.snapshot()
        lines = [
            f"stackgan_requests_total {snap['requests']}",
            f"stackgan_images_total {snap['images']}",
            f"stackgan_batches_total {snap['batches']}",
            f"stackgan_batch_images_total {snap['batch_images']}",
            f"stackgan_rejected_total {snap['rejected_503']}",
            f"stackgan_abandoned_total {snap['abandoned']}",
            f"stackgan_skipped_total {snap['skipped_before_generation']}",
            f"stackgan_queue_depth {self.batcher.depth}",
            f"stackgan_uptime_seconds {snap['uptime_s']}",
        ]
        lines += [
            f'stackgan_responses_total{{status="{k}"}} {v}'
            for k, v in snap["responses_by_status"].items()
        ]
        return "\n".join(lines) + "\n"

    async def index(self) -> FileResponse:
        return FileResponse(self.static / "index.html", media_type="text/html")


def _response(
    body: ImagesRequest,
    job: _Job,
    outcome: BatchOutcome,
    encoded: list[list[str]],
    t0: float,
) -> ImagesResponse:
    stages = None
    if body.stages:
        stages = [
            StageImages(stage=i + 1, resolution=int(s.shape[1]), images=e)
            for i, (s, e) in enumerate(zip(outcome.result.stage_images, encoded))
        ]
    return ImagesResponse(
        model=job.name,
        seed=job.seed,
        captions=job.captions,
        num_images=body.num_images,
        resolution=job.entry.sampler.resolution,
        format=body.format,
        images=encoded[-1],
        stages=stages,
        batch_images=outcome.batch_images,
        batch_requests=outcome.batch_requests,
        timing_ms={
            "queue": round(outcome.queue_s * 1000, 2),
            "generate": round(outcome.generate_s * 1000, 2),
            "total": round((time.perf_counter() - t0) * 1000, 2),
        },
    )


def _with_body_model(
    route: Callable[[ImagesRequest, Request], Awaitable[ImagesResponse]],
    model: type[ImagesRequest],
) -> Callable[[ImagesRequest, Request], Awaitable[ImagesResponse]]:
    """``route`` with its body declared as ``model``: FastAPI reads the body's type off the
    signature, and this app's model carries its own caption limit (``max_captions``)."""

    async def images(body: ImagesRequest, request: Request) -> ImagesResponse:
        return await route(body, request)

    images.__doc__ = route.__doc__
    sig = inspect.signature(images)
    params = [
        p.replace(annotation=model) if p.name == "body" else p for p in sig.parameters.values()
    ]
    setattr(images, "__signature__", sig.replace(parameters=params))  # noqa: B010 (mypy)
    return images


def create_app(models: Mapping[str, ModelEntry], config: ServeConfig | None = None) -> FastAPI:
    """The ASGI app over already loaded models (the first is the default).

    The micro-batcher starts and stops with the app's lifespan (uvicorn, or
    ``with TestClient(app)``); ``app.state.batcher`` and ``app.state.counters`` expose it.

    Args:
        models: loaded models by name (:func:`stackgan.serve.models.load_models`).
        config: limits, batching and the optional API key.
    """
    if not models:
        raise ValueError("no model to serve")
    cfg = config or ServeConfig()
    counters = Counters()
    batcher = MicroBatcher(
        {name: e.sampler for name, e in models.items()},
        max_batch=cfg.max_batch,
        max_wait_s=cfg.max_wait_ms / 1000,
        queue_size=cfg.queue_size,
        counters=counters,
    )

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        batcher.start()
        try:
            yield
        finally:
            await run_in_threadpool(batcher.stop)

    app = FastAPI(
        title="stackgan",
        version=__version__,
        summary="Text-to-image synthesis with Stacked GANs: captions in, PNGs out.",
        lifespan=lifespan,
        docs_url=None,  # FastAPI's page loads Swagger UI from a CDN; add_offline_docs serves it
        redoc_url=None,
    )
    app.state.batcher, app.state.counters, app.state.config = batcher, counters, cfg
    add_error_handlers(app)
    r = _Routes(models, cfg, batcher, counters)
    app.post("/v1/images", response_model=ImagesResponse, responses=IMAGES_ERRORS)(
        _with_body_model(r.images, images_request_model(cfg.max_captions))
    )
    app.get("/v1/models")(r.list_models)
    app.get("/healthz")(r.healthz)
    app.get("/readyz", responses=BUSY)(r.readyz)
    app.get("/metrics", response_class=PlainTextResponse)(r.metrics)
    app.get("/", include_in_schema=False)(r.index)
    app.mount("/static", StaticFiles(directory=r.static), name="static")
    add_offline_docs(app)
    # outermost last: the access log sees every answer, the body limit's 413s and 408s and the
    # key's 401s included; the key is checked before the body is read or parsed
    app.add_middleware(BodyLimit, limit=cfg.max_body_bytes, timeout_s=cfg.body_timeout_s)
    if cfg.api_key is not None:
        app.add_middleware(ApiKey, key=cfg.api_key)
    app.add_middleware(AccessLog, counters=counters)
    return app


def bind_socket(host: str, port: int) -> socket.socket:
    """A listening TCP socket on ``host:port`` (port 0: a free port, read it off the socket).

    Raises:
        OSError: the address cannot be bound (in use, not this machine's).
    """
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    family, _, _, _, addr = infos[0]
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind(addr)
    except OSError:
        sock.close()
        raise
    sock.listen(2048)
    sock.set_inheritable(True)
    return sock


def build_server(models: Mapping[str, ModelEntry], config: ServeConfig) -> uvicorn.Server:
    """The uvicorn server :func:`serve` runs (``server.run(sockets=[sock])``; tests run it in a
    thread): the app, a connection limit, and the header, body and keep-alive deadlines."""
    app = create_app(models, config)
    # bounded connections: past this uvicorn answers 503 itself, before reading a body; set
    # above the queue so that the queue's 503 (JSON, Retry-After) is what clients normally see.
    # Silent and slow connections count against it until their deadline closes them.
    limit = config.queue_size + config.max_batch + 64
    return uvicorn.Server(
        uvicorn.Config(
            app,
            http=deadline_protocol(config.header_timeout_s, config.keep_alive_s),
            log_config=None,
            access_log=False,  # AccessLog writes one line per request
            limit_concurrency=limit,
        )
    )


def serve(
    models: Mapping[str, ModelEntry],
    config: ServeConfig,
    host: str = "127.0.0.1",
    port: int = 8000,
    on_ready: Callable[[str], None] | None = None,
) -> None:
    """Serve ``models`` on ``host:port`` with uvicorn until interrupted (Ctrl-C, SIGTERM).

    Args:
        models: loaded models by name.
        config: limits, batching, timeouts, API key.
        host: the address to bind; ``127.0.0.1`` keeps the server on this machine.
        port: TCP port; 0 picks a free one.
        on_ready: called with the server's URL once the socket listens.
    """
    server = build_server(models, config)
    sock = bind_socket(host, port)
    bound = sock.getsockname()[1]
    shown = f"[{host}]" if ":" in host else host
    if on_ready is not None:
        on_ready(f"http://{shown}:{bound}")
    server.run(sockets=[sock])
