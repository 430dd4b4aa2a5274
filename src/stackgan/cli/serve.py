"""``stackgan serve``: the HTTP API and web page (a thin layer over :mod:`stackgan.serve`)."""

from __future__ import annotations

import logging

import click

logger = logging.getLogger(__name__)


@click.command()
@click.option(
    "--model",
    "models",
    multiple=True,
    default=("shapes",),
    show_default=True,
    help="A model to serve: a bundled model's name (shapes, birds, flowers; stackgan models) or an "
    "export's path, served under its file stem. Repeat for several; the first is the default.",
)
@click.option(
    "--host",
    default="127.0.0.1",
    show_default=True,
    help="Address to listen on. 127.0.0.1 keeps the server on this machine; 0.0.0.0 opens it "
    "to the network (then set --api-key).",
)
@click.option(
    "--port",
    default=8000,
    show_default=True,
    type=click.IntRange(0, 65535),
    help="TCP port; 0 picks a free one (the URL is printed at start-up).",
)
@click.option("--device", default="cpu", show_default=True, help="cpu, cuda, cuda:1, ...")
@click.option(
    "--max-batch",
    default=32,
    show_default=True,
    type=click.IntRange(1, 1024),
    help="Most images in one generator call; concurrent requests share it. 1: no "
    "micro-batching (each request's images bit for bit those of `stackgan sample`).",
)
@click.option(
    "--max-wait-ms",
    default=5.0,
    show_default=True,
    type=click.FloatRange(0, 10_000),
    help="How long a request waits for others to join its batch (only when requests have "
    "been arriving together; a lone request on a quiet server goes at once).",
)
@click.option(
    "--queue-size",
    default=64,
    show_default=True,
    type=click.IntRange(1, 100_000),
    help="Most requests waiting; past it a request gets 503 with Retry-After at once.",
)
@click.option(
    "--max-captions",
    default=16,
    show_default=True,
    type=click.IntRange(1, 10_000),
    help="Most captions in one request.",
)
@click.option(
    "--max-images",
    default=32,
    show_default=True,
    type=click.IntRange(1, 10_000),
    help="Most images in one request (captions x num_images).",
)
@click.option(
    "--max-body-kb",
    default=256,
    show_default=True,
    type=click.IntRange(1, 1_000_000),
    help="Largest request body in KiB; larger is a 413.",
)
@click.option(
    "--header-timeout",
    default=10.0,
    show_default=True,
    type=click.FloatRange(0.1, 3600),
    help="Seconds a connection has to send a complete request header (from opening, or from "
    "its last response); then it is closed (408 if it sent part of one).",
)
@click.option(
    "--body-timeout",
    default=30.0,
    show_default=True,
    type=click.FloatRange(0.1, 3600),
    help="Seconds a request's body has to arrive, from its header; then a 408.",
)
@click.option(
    "--keep-alive",
    default=5.0,
    show_default=True,
    type=click.FloatRange(0.1, 3600),
    help="Seconds an idle keep-alive connection stays open.",
)
@click.option(
    "--api-key",
    default=None,
    envvar="STACKGAN_API_KEY",
    show_envvar=True,
    help="Require this key on the API routes (Authorization: Bearer KEY or X-API-Key: KEY). "
    "Default: no key.",
)
def serve(
    models: tuple[str, ...],
    host: str,
    port: int,
    device: str,
    max_batch: int,
    max_wait_ms: float,
    queue_size: int,
    max_captions: int,
    max_images: int,
    max_body_kb: int,
    header_timeout: float,
    body_timeout: float,
    keep_alive: float,
    api_key: str | None,
) -> None:
    """Serve models over HTTP: a JSON API (docs at /docs) and a web page at /.

    The models load once at start-up. Concurrent requests are micro-batched into one
    generator call; a full queue answers 503 with Retry-After. Each response carries its seed:
    the same request with that seed gives the same images. Stop with Ctrl-C.

    \b
    Examples:
      stackgan serve                                    # http://127.0.0.1:8000
      stackgan serve --port 8080 --max-batch 16 --queue-size 32
      stackgan serve --model shapes --model runs/00001-v1-shapes-stage2-bs16/model.safetensors
      stackgan serve --host 0.0.0.0 --api-key "$KEY"    # open to the network: use a key
    """
    try:
        from stackgan.serve.app import serve as run_server
        from stackgan.serve.models import load_models
        from stackgan.serve.schemas import ServeConfig, settings_json
    except ImportError as exc:  # the [serve] extra is not installed
        raise click.ClickException(
            f"stackgan serve needs the serve extra (pip install 'stackgan[serve]'): {exc}"
        ) from exc

    try:
        config = ServeConfig(
            max_batch=max_batch,
            max_wait_ms=max_wait_ms,
            queue_size=queue_size,
            max_captions=max_captions,
            max_images=max_images,
            max_body_bytes=max_body_kb * 1024,
            api_key=api_key,
            header_timeout_s=header_timeout,
            body_timeout_s=body_timeout,
            keep_alive_s=keep_alive,
        )
    except ValueError as exc:  # e.g. an API key no request could match: refused before loading
        raise click.ClickException(str(exc)) from None
    if host not in ("127.0.0.1", "localhost", "::1") and api_key is None:
        logger.warning("listening on %s without --api-key: anyone who reaches it can use it", host)
    loaded = load_models(list(models), device=device)
    logger.info("settings: %s", settings_json(config))

    def ready(url: str) -> None:
        # the line scripts and tests wait for: the socket listens from here on
        click.echo(f"stackgan serve: listening on {url} (API docs: {url}/docs)", err=True)

    try:
        run_server(loaded, config, host=host, port=port, on_ready=ready)
    except OSError as exc:
        raise click.ClickException(f"cannot listen on {host}:{port}: {exc}") from exc
