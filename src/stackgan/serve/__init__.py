"""``stackgan serve``: an HTTP API and a web page over ``Text2ImageSampler``.

Needs the ``serve`` extra (``pip install 'stackgan[serve]'``: FastAPI and uvicorn); nothing
outside this package imports it, so ``import stackgan`` and the other commands work without.

- :mod:`stackgan.serve.models`: load the models once (``shapes`` or export paths).
- :mod:`stackgan.serve.batching`: the bounded queue and the micro-batching worker thread.
- :mod:`stackgan.serve.schemas`: the settings (``ServeConfig``) and the request/response bodies.
- :mod:`stackgan.serve.middleware`: the JSON error shape, the API key, the body's size and time
  limits and the access log.
- :mod:`stackgan.serve.conn`: uvicorn's connections with a deadline on each request header.
- :mod:`stackgan.serve.app`: the FastAPI app (``create_app``) and the uvicorn runner (``serve``).

Example::

    from fastapi.testclient import TestClient
    from stackgan.serve import create_app, load_models

    with TestClient(create_app(load_models(["shapes"]))) as client:
        r = client.post("/v1/images", json={"captions": ["a big red star"], "seed": 1})
        png_base64 = r.json()["images"][0]
"""

from stackgan.serve.app import create_app, serve
from stackgan.serve.batching import GenRequest, MicroBatcher, QueueFullError, generate_batch
from stackgan.serve.models import ModelEntry, load_models
from stackgan.serve.schemas import ServeConfig

__all__ = [
    "GenRequest",
    "MicroBatcher",
    "ModelEntry",
    "QueueFullError",
    "ServeConfig",
    "create_app",
    "generate_batch",
    "load_models",
    "serve",
]
