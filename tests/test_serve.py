"""``stackgan serve``: the HTTP API (every route and error path), micro-batching and its
reproducibility, back-pressure, the API key, a fuzz pass, the web page in headless Chromium
and a short load test against a real server subprocess on 127.0.0.1."""

from __future__ import annotations

import base64
import importlib.util
import io
import json
import logging
import os
import random
import shutil
import subprocess
import sys
import threading
import time
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

pytest.importorskip("fastapi")
pytest.importorskip("httpx")  # FastAPI's TestClient

from fastapi.testclient import TestClient

from stackgan.cli import main
from stackgan.serve import (
    GenRequest,
    ServeConfig,
    create_app,
    generate_batch,
    load_models,
)
from stackgan.serve.batching import MicroBatcher, QueueFullError, StoppedError
from stackgan.text import TextEncoderError

from .conftest import tiny_config

ROOT = Path(__file__).resolve().parents[1]
STAR = "a big red star on a sky blue background"
CIRCLE = "a tiny violet circle on the left, on a beige background"
SQUARE = "there is a small green square at the top"


@pytest.fixture(scope="module")
def models():
    """The bundled shapes model, loaded once for the module."""
    return load_models(["shapes"])


@pytest.fixture(scope="module")
def sampler(models):
    return models["shapes"].sampler


@contextmanager
def client_for(models, **settings):
    """A TestClient over a fresh app (its own batcher and counters), lifespan included."""
    app = create_app(models, ServeConfig(**settings))
    with TestClient(app) as client:
        yield client


@pytest.fixture(scope="module")
def client(models):
    with client_for(models) as c:
        yield c


def _png(text: str) -> np.ndarray:
    """A base64 PNG or PNG data URI -> (H, W, 3) uint8."""
    text = text.removeprefix("data:image/png;base64,")
    with Image.open(io.BytesIO(base64.b64decode(text))) as im:
        assert im.format == "PNG"
        return np.asarray(im.convert("RGB"))


def _images(body: dict) -> np.ndarray:
    return np.stack([_png(s) for s in body["images"]])


def _post_images(client, **body):
    return client.post("/v1/images", json=body)


# -- routes --------------------------------------------------------------------------------------


def test_models_lists_the_model_its_stages_examples_and_the_limits(client, sampler):
    r = client.get("/v1/models")
    assert r.status_code == 200
    body = r.json()
    assert body["default"] == "shapes"
    (m,) = body["models"]
    assert m["name"] == "shapes" and m["resolution"] == sampler.resolution == 256
    assert m["stages"] == [64, 256] and m["conditional"] is True and m["version"] == "v1"
    assert m["dataset"] == "shapes" and m["text_encoder"] == sampler.encoder.name
    assert "/" not in m["text_encoder"]  # not the path the encoder was trained at
    assert STAR in m["examples"] and len(m["examples"]) >= 4
    assert body["limits"] == {
        "max_captions": 16,
        "max_caption_chars": 1000,
        "max_images": 32,
        "max_body_bytes": 256 * 1024,
        "max_seed": 2**53 - 1,
    }


def test_images_are_the_librarys_with_stages_and_the_seed(client, sampler):
    r = _post_images(client, captions=[STAR, CIRCLE], seed=11, num_images=2, stages=True)
    assert r.status_code == 200, r.text
    body = r.json()
    assert (body["seed"], body["num_images"], body["model"]) == (11, 2, "shapes")
    assert body["captions"] == [STAR, CIRCLE] and len(body["images"]) == 4
    ref = sampler([STAR, CIRCLE], seed=11, num_images=2, output_type="np")
    # alone in its batch (nothing else queued): the library's images, bit for bit
    assert body["batch_requests"] == 1 and body["batch_images"] == 4
    assert np.array_equal(_images(body), ref.images)
    stages = body["stages"]
    assert [(s["stage"], s["resolution"]) for s in stages] == [(1, 64), (2, 256)]
    for s, want in zip(stages, ref.stage_images):
        assert np.array_equal(np.stack([_png(x) for x in s["images"]]), want)
    assert stages[-1]["images"] == body["images"]
    assert set(body["timing_ms"]) == {"queue", "generate", "total"}


def test_format_png_gives_data_uris_of_the_same_images(client):
    a = _post_images(client, captions=[STAR], seed=4).json()
    b = _post_images(client, captions=[STAR], seed=4, format="png").json()
    assert b["format"] == "png" and b["stages"] is None
    assert b["images"][0].startswith("data:image/png;base64,")
    assert b["images"][0] == "data:image/png;base64," + a["images"][0]


def test_a_null_seed_is_drawn_and_returned_and_reproduces_the_images(client):
    first = _post_images(client, captions=[CIRCLE], seed=None).json()
    second = _post_images(client, captions=[CIRCLE]).json()
    assert isinstance(first["seed"], int) and 0 <= first["seed"] < 2**31
    assert first["seed"] != second["seed"]  # 1 in 2**31 of a false alarm
    again = _post_images(client, captions=[CIRCLE], seed=first["seed"]).json()
    assert again["images"] == first["images"]
    assert not np.array_equal(_images(first), _images(second))


def test_healthz_readyz_and_metrics_count_what_happened(models):
    with client_for(models) as c:
        assert c.get("/readyz").json() == {"ready": True, "models": ["shapes"], "queue_depth": 0}
        assert _post_images(c, captions=[STAR], num_images=3).status_code == 200
        assert _post_images(c, captions=[""]).status_code == 422
        h = c.get("/healthz").json()
        assert h["status"] == "ok" and h["queue"] == {"depth": 0, "size": 64}
        n = h["counters"]
        # readyz + 2 posts counted when they finished (this /healthz is counted after it answers)
        assert (n["requests"], n["images"], n["batches"], n["rejected_503"]) == (3, 3, 1, 0)
        assert n["errors_by_status"] == {"422": 1} and n["mean_batch_images"] == 3.0
        text = c.get("/metrics").text
        assert "stackgan_images_total 3\n" in text and "stackgan_batches_total 1\n" in text
        assert 'stackgan_responses_total{status="422"} 1' in text


def test_the_page_and_its_static_files_are_served_and_need_no_network(client):
    page = client.get("/")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    for ref in ("/static/app.js", "/static/style.css"):
        assert ref in page.text
    texts = [page.text]
    for ref, kind in (("/static/app.js", "javascript"), ("/static/style.css", "css")):
        r = client.get(ref)
        assert r.status_code == 200 and kind in r.headers["content-type"]
        texts.append(r.text)
    for t in texts:  # offline: no CDN, no remote font or script
        assert "http://" not in t and "https://" not in t and "//cdn" not in t
    docs = client.get("/docs")
    assert docs.status_code == 200
    schema = client.get("/openapi.json").json()
    assert {"/v1/images", "/v1/models", "/healthz", "/readyz", "/metrics"} <= set(schema["paths"])
    fields = schema["components"]["schemas"]["ImagesRequest"]["properties"]
    assert {"captions", "model", "seed", "num_images", "stages", "format"} == set(fields)


def test_one_log_line_per_request_with_status_latency_and_batch(client, caplog):
    with caplog.at_level(logging.INFO, logger="stackgan.serve"):
        _post_images(client, captions=[STAR], seed=1, num_images=2)
        client.get("/healthz")
    lines = [r.getMessage() for r in caplog.records if r.name == "stackgan.serve.middleware"]
    assert len(lines) == 2
    assert lines[0].startswith("POST /v1/images 200 ") and lines[0].endswith(" ms batch=2")
    assert lines[1].startswith("GET /healthz 200 ") and "batch" not in lines[1]


# -- bad requests: a 4xx naming the field, never a 500 -------------------------------------------

BAD_REQUESTS = [
    ({"captions": [""]}, 422, "captions.0", "empty"),
    ({"captions": [STAR, "   "]}, 422, "captions.1", "empty"),
    ({"captions": ["x" * 10_000]}, 422, "captions.0", "at most 1000"),
    ({"captions": [STAR] * 17}, 422, "captions", "17 captions; the limit per request is 16"),
    ({"captions": [STAR] * 8, "num_images": 5}, 422, "num_images", "limit per request is 32"),
    ({"captions": []}, 422, "captions", "at least one caption"),
    ({}, 422, "captions", "at least one caption"),
    ({"captions": STAR}, 422, "captions", "valid list"),
    ({"captions": [1]}, 422, "captions.0", "valid string"),
    ({"captions": [[STAR]]}, 422, "captions.0", "valid string"),
    ({"captions": [STAR], "seed": "3"}, 422, "seed", "valid integer"),
    ({"captions": [STAR], "seed": -1}, 422, "seed", "greater than or equal to 0"),
    ({"captions": [STAR], "seed": 2**64}, 422, "seed", "less than or equal"),
    ({"captions": [STAR], "seed": 1.5}, 422, "seed", "valid integer"),
    ({"captions": [STAR], "num_images": 0}, 422, "num_images", "greater than or equal to 1"),
    ({"captions": [STAR], "num_images": True}, 422, "num_images", "valid integer"),
    ({"captions": [STAR], "num_images": 10**30}, 422, "num_images", "limit per request"),
    ({"captions": [STAR], "stages": "yes"}, 422, "stages", "valid boolean"),
    ({"captions": [STAR], "format": "jpeg"}, 422, "format", "'png' or 'base64'"),
    ({"captions": [STAR], "model": "birds"}, 422, "model", "unknown model 'birds'"),
    ({"captions": [STAR], "model": 3}, 422, "model", "valid string"),
    ({"caption": STAR}, 422, "caption", "Extra inputs"),
    ({"captions": ["a \ud800 star"]}, 422, "captions.0", "unicode string"),  # lone surrogate
    ([STAR], 422, "body", "valid dictionary"),
]


@pytest.mark.parametrize(
    ("body", "status", "field", "message"), BAD_REQUESTS, ids=[b[2] for b in BAD_REQUESTS]
)
def test_a_bad_request_is_a_4xx_naming_the_field(client, body, status, field, message):
    data = json.dumps(body)  # ensure_ascii: the lone surrogate travels as \\ud800
    r = client.post("/v1/images", content=data, headers={"Content-Type": "application/json"})
    assert r.status_code == status, r.text
    err = r.json()
    assert err["status"] == status and err["field"] == field
    assert message in err["error"], err
    assert "\n" not in err["error"] and len(err["error"]) < 300  # one line, no echo of the input


def test_malformed_json_and_oversized_bodies(models):
    with client_for(models, max_body_bytes=2048) as c:
        headers = {"Content-Type": "application/json"}
        r = c.post("/v1/images", content=b'{"captions": ["a star"', headers=headers)
        assert r.status_code == 400 and r.json()["field"] == "body"
        assert r.json()["error"].startswith("malformed JSON at position 22")
        r = c.post("/v1/images", content=b"\xff\xfe not json", headers=headers)
        assert r.status_code == 400 and r.json()["field"] == "body"
        big = json.dumps({"captions": ["a star " * 400]}).encode()  # 2.8 KB > 2 KB
        r = c.post("/v1/images", content=big, headers=headers)  # Content-Length: refused unread
        assert r.status_code == 413 and r.json()["field"] == "body"
        assert "limit of 2048 bytes" in r.json()["error"]

        def chunks():  # no Content-Length: counted while it streams in
            for i in range(0, len(big), 500):
                yield big[i : i + 500]

        r = c.post("/v1/images", content=chunks(), headers=headers)
        assert r.status_code == 413 and r.json()["field"] == "body"
        r = c.post("/v1/images", content=b"", headers=headers)
        assert r.status_code == 422 and r.json()["field"] == "body"
        assert c.get("/nope").json() == {"status": 404, "error": "Not Found", "field": None}
        assert c.get("/v1/images").status_code == 405
        assert _post_images(c, captions=[STAR]).status_code == 200  # still serving


# -- the API key ---------------------------------------------------------------------------------


def test_the_api_key_guards_the_api_routes_only(models):
    with client_for(models, api_key="s3cret") as c:
        for path in ("/v1/models",):
            r = c.get(path)
            assert r.status_code == 401 and r.json()["field"] == "authorization"
            assert r.headers["WWW-Authenticate"] == "Bearer"
        r = c.post("/v1/images", json={"captions": [STAR]})
        assert r.status_code == 401
        bad = c.post("/v1/images", json={"captions": [STAR]}, headers={"X-API-Key": "s3cre"})
        assert bad.status_code == 401
        bearer = {"Authorization": "Bearer s3cret"}
        assert c.post("/v1/images", json={"captions": [STAR]}, headers=bearer).status_code == 200
        assert c.get("/v1/models", headers={"X-API-Key": "s3cret"}).status_code == 200
        # the key is checked before the body: an unauthenticated caller learns nothing
        assert c.post("/v1/images", json={"captions": [""]}).status_code == 401
        for path in ("/healthz", "/readyz", "/", "/static/app.js", "/docs"):
            assert c.get(path).status_code == 200, path
    with pytest.raises(ValueError, match="empty"):
        ServeConfig(api_key=" ")


def test_the_cli_takes_the_api_key_from_the_environment(monkeypatch):
    from stackgan.cli.serve import serve

    monkeypatch.setenv("STACKGAN_API_KEY", "from-env")
    ctx = serve.make_context("serve", [])
    assert ctx.params["api_key"] == "from-env"
    assert ctx.params["host"] == "127.0.0.1" and ctx.params["models"] == ("shapes",)


# -- micro-batching, reproducibility, back-pressure ----------------------------------------------


def _wait_for(cond, timeout=20.0):
    deadline = time.monotonic() + timeout
    while not cond():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.005)


def _concurrently(client, bodies):
    """POST every body from its own thread; return the responses in order."""
    out = [None] * len(bodies)

    def post(i):
        out[i] = client.post("/v1/images", json=bodies[i])

    threads = [threading.Thread(target=post, args=(i,)) for i in range(len(bodies))]
    for t in threads:
        t.start()
    return threads, out


MIXED = [
    {"captions": [STAR], "seed": 3},
    {"captions": [CIRCLE, SQUARE], "seed": 7, "num_images": 3},
    {"captions": [SQUARE], "seed": 0, "num_images": 2},
    {"captions": [CIRCLE], "seed": 2**40},
]


def test_concurrent_requests_share_one_generator_call_and_each_gets_its_own_images(models, sampler):
    with client_for(models, max_batch=32, max_wait_ms=0) as c:
        batcher = c.app.state.batcher
        batcher.pause()  # the requests gather in the queue, then go as one batch
        threads, out = _concurrently(c, MIXED)
        _wait_for(lambda: batcher.depth == len(MIXED))
        batcher.resume()
        for t in threads:
            t.join()
        batches = c.get("/healthz").json()["counters"]["batches"]
    total = sum(len(b["captions"]) * b.get("num_images", 1) for b in MIXED)
    assert batches == 1
    refs = [
        sampler(b["captions"], seed=b["seed"], num_images=b.get("num_images", 1), output_type="np")
        for b in MIXED
    ]
    for i, r in enumerate(out):
        assert r.status_code == 200, r.text
        body = r.json()
        assert (body["batch_requests"], body["batch_images"]) == (len(MIXED), total)
        got = _images(body).astype(int)
        # its own images: the request made alone, to within one 8-bit level on a few pixels
        # (the generator's float sums depend on the batch size: docs/serving.md)...
        diff = np.abs(got - refs[i].images)
        assert diff.max() <= 1 and (diff > 0).mean() < 1e-3, (i, diff.max(), (diff > 0).mean())
        # ...and nobody else's
        for j, other in enumerate(refs):
            if j != i and other.images.shape == got.shape:
                assert np.abs(got - other.images).mean() > 5


def test_generate_batch_is_the_library_call_per_request(sampler):
    """The batch function itself: per-request encoding and noise, one call, sliced in order.
    Bit-exact where the arithmetic is (each request alone); within one level when mixed."""
    reqs = [GenRequest(b["captions"], b.get("num_images", 1), b["seed"]) for b in MIXED]
    together = generate_batch(sampler, reqs)
    for req, res in zip(reqs, together):
        ref = sampler(req.captions, seed=req.seed, num_images=req.num_images, output_type="np")
        (alone,) = generate_batch(sampler, [req])
        assert np.array_equal(alone.images, ref.images)
        for a, b in zip(alone.stage_images, ref.stage_images):
            assert np.array_equal(a, b)
        assert res.images.shape == ref.images.shape and len(res.stage_images) == 2
        assert np.abs(res.images.astype(int) - ref.images).max() <= 1
        # the same batch again: the same bytes (deterministic under a fixed composition)
    again = generate_batch(sampler, reqs)
    for a, b in zip(together, again):
        assert np.array_equal(a.images, b.images)


def test_max_batch_one_is_bit_exact_under_concurrency(models, sampler):
    with client_for(models, max_batch=1, max_wait_ms=0) as c:
        batcher = c.app.state.batcher
        batcher.pause()
        threads, out = _concurrently(c, MIXED[:3])
        _wait_for(lambda: batcher.depth == 3)
        batcher.resume()
        for t in threads:
            t.join()
    for b, r in zip(MIXED[:3], out):
        body = r.json()
        assert body["batch_requests"] == 1
        ref = sampler(b["captions"], seed=b["seed"], num_images=b.get("num_images", 1))
        assert np.array_equal(_images(body), np.stack([np.asarray(im) for im in ref.images]))


def test_batches_respect_max_batch(models):
    with client_for(models, max_batch=3, max_wait_ms=0) as c:
        batcher = c.app.state.batcher
        batcher.pause()
        bodies = [{"captions": [STAR], "seed": i, "num_images": 2} for i in range(4)]
        threads, out = _concurrently(c, bodies)
        _wait_for(lambda: batcher.depth == 4)
        batcher.resume()
        for t in threads:
            t.join()
        sizes = [r.json()["batch_images"] for r in out]
        assert all(s == 2 for s in sizes)  # two 2-image requests would be 4 > 3
        # one request larger than max_batch still runs (alone)
        r = _post_images(c, captions=[STAR], num_images=5)
        assert r.status_code == 200 and r.json()["batch_images"] == 5


def test_max_wait_holds_a_request_for_company_only_under_load(models):
    with client_for(models, max_wait_ms=400) as c:
        quiet = _post_images(c, captions=[STAR], seed=1).json()
        assert quiet["timing_ms"]["queue"] < 200  # a lone request on a quiet server goes at once
        batcher = c.app.state.batcher
        batcher.pause()
        threads, out = _concurrently(c, [{"captions": [STAR], "seed": i} for i in range(2)])
        _wait_for(lambda: batcher.depth == 2)
        batcher.resume()
        for t in threads:
            t.join()
        assert [r.json()["batch_requests"] for r in out] == [2, 2]
        # requests have been coming together: the next one waits for company (none comes)
        busy = _post_images(c, captions=[STAR], seed=1).json()
        assert busy["timing_ms"]["queue"] >= 350 and busy["images"] == quiet["images"]


def test_a_full_queue_answers_503_with_retry_after_at_once(models):
    with client_for(models, queue_size=2, max_wait_ms=0) as c:
        batcher = c.app.state.batcher
        batcher.pause()  # the worker is "slow": nothing leaves the queue
        threads, out = _concurrently(c, [{"captions": [STAR], "seed": i} for i in range(2)])
        _wait_for(lambda: batcher.depth == 2)
        t0 = time.perf_counter()
        r = _post_images(c, captions=[STAR])
        assert time.perf_counter() - t0 < 2.0  # at once, not after the queue drains
        assert r.status_code == 503 and int(r.headers["Retry-After"]) >= 1
        assert "queue full" in r.json()["error"]
        ready = c.get("/readyz")
        assert ready.status_code == 503 and ready.json()["error"] == "the queue is full"
        batcher.resume()
        for t in threads:
            t.join()
        assert [x.status_code for x in out] == [200, 200]
        assert c.get("/readyz").status_code == 200
        h = c.get("/healthz").json()["counters"]
        assert h["rejected_503"] == 1 and h["errors_by_status"]["503"] == 2  # + the readyz


def test_the_batcher_fails_waiting_requests_when_it_stops(sampler):
    b = MicroBatcher({"shapes": sampler}, max_batch=4, queue_size=1)
    with pytest.raises(StoppedError):
        b.submit("shapes", GenRequest([STAR], 1, 0))  # not started
    b.start()
    b.pause()
    fut = b.submit("shapes", GenRequest([STAR], 1, 0))
    with pytest.raises(QueueFullError) as full:
        b.submit("shapes", GenRequest([STAR], 1, 1))
    assert full.value.retry_after >= 1
    with pytest.raises(KeyError):
        b.submit("birds", GenRequest([STAR], 1, 0))
    b.stop()
    with pytest.raises(StoppedError):
        fut.result(timeout=5)
    assert not b.alive


def test_a_request_the_model_refuses_fails_alone(models, sampler):
    b = MicroBatcher({"shapes": sampler}, max_batch=8, max_wait_s=0, queue_size=8)
    b.start()
    try:
        b.pause()
        good = b.submit("shapes", GenRequest([STAR], 1, 0))
        bad = b.submit("shapes", GenRequest([""], 1, 0))  # the API refuses it earlier
        b.resume()
        assert good.result(timeout=30).result.images.shape == (1, 256, 256, 3)
        with pytest.raises(TextEncoderError, match="empty"):
            bad.result(timeout=30)
    finally:
        b.stop()


def test_a_failing_model_is_a_json_500_and_the_server_goes_on(models):
    import torch

    from stackgan.sampling import Text2ImageSampler
    from stackgan.serve import ModelEntry

    class Broken(torch.nn.Module):
        def forward(self, *args):
            raise RuntimeError("out of memory (simulated)")

    broken = Text2ImageSampler.from_pretrained()
    broken.generator = Broken()
    entries = {**models, "broken": ModelEntry("broken", broken, "test")}
    app = create_app(entries, ServeConfig())
    with TestClient(app, raise_server_exceptions=False) as c:
        r = _post_images(c, model="broken", captions=[STAR])
        assert r.status_code == 500
        assert r.json() == {
            "status": 500,
            "error": "internal error (RuntimeError); see the server log",
            "field": None,
        }
        assert _post_images(c, captions=[STAR]).status_code == 200
        h = c.get("/healthz").json()
        assert h["status"] == "ok" and h["counters"]["errors_by_status"] == {"500": 1}


# -- other models --------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def uncond_export(tiny_shapes, tmp_path_factory):
    """A tiny unconditional StackGAN++ export (random weights: the API, not the images)."""
    from stackgan.checkpoint import export_generator
    from stackgan.models.registry import build_generator

    cfg = tiny_config(
        tiny_shapes,
        **{"model.version": "v2", "model.num_branches": 2, "model.ngf": 8},
        **{"model.conditional": False, "data.name": "folder"},
    )
    path = tmp_path_factory.mktemp("models") / "noise-v2.safetensors"
    export_generator(path, build_generator(cfg).state_dict(), cfg)
    return path


def test_an_unconditional_export_is_served_by_its_file_stem(models, uncond_export):
    from stackgan.sampling import Text2ImageSampler

    both = {**models, **load_models([str(uncond_export)])}
    with client_for(both) as c:
        listed = {m["name"]: m for m in c.get("/v1/models").json()["models"]}
        assert set(listed) == {"shapes", "noise-v2"}
        m = listed["noise-v2"]
        assert m["conditional"] is False and m["text_encoder"] is None and m["examples"] == []
        assert m["stages"] == [16, 32] and m["version"] == "v2"
        r = _post_images(c, model="noise-v2", seed=5, num_images=3, stages=True)
        assert r.status_code == 200, r.text
        ref = Text2ImageSampler.from_pretrained(uncond_export)(
            None, seed=5, num_images=3, output_type="np"
        )
        assert np.array_equal(_images(r.json()), ref.images)
        assert r.json()["captions"] == []
        r = _post_images(c, model="noise-v2", captions=[STAR])
        assert r.status_code == 422 and r.json()["field"] == "captions"
        assert "unconditional" in r.json()["error"]
        assert _post_images(c, captions=[STAR]).json()["model"] == "shapes"  # the default


def test_model_names_must_be_unique_and_files_must_exist(tmp_path):
    copy = tmp_path / "shapes.safetensors"
    with pytest.raises(ValueError, match="same name: shapes"):
        load_models(["shapes", str(copy)])
    with pytest.raises(FileNotFoundError, match="no such file"):
        load_models([str(tmp_path / "missing.safetensors")])
    res = CliRunner().invoke(main, ["serve", "--model", str(tmp_path / "missing.safetensors")])
    assert res.exit_code != 0 and "no such file" in res.output
    assert "Traceback" not in res.output and len(res.output.strip().splitlines()) == 1


def test_bundled_models_are_served_by_name_with_their_own_examples():
    from stackgan.pretrained import FLOWERS_SEEN, PRETRAINED

    models = load_models(["shapes", "birds", "flowers"])
    assert set(models) == {"shapes", "birds", "flowers"}
    birds = models["birds"].describe()
    assert birds["dataset"] == "birds" and birds["resolution"] == 256
    assert birds["source"] == "bundled (birds-v1.safetensors)"
    assert birds["examples"] and set(birds["examples"]) <= set(PRETRAINED["birds"].examples)
    flowers = models["flowers"].describe()
    assert flowers["version"] == "v2" and flowers["stages"] == [64, 128, 256]
    assert flowers["text_encoder"] == "minilm"
    seen, unseen = (
        PRETRAINED["flowers"].examples[:FLOWERS_SEEN],
        PRETRAINED["flowers"].examples[FLOWERS_SEEN:],
    )
    assert {*seen} & {*flowers["examples"]} and {*unseen} & {*flowers["examples"]}


def test_without_the_serve_extra_the_command_says_what_to_install(monkeypatch):
    for mod in ("fastapi", "stackgan.serve", "stackgan.serve.app", "stackgan.serve.schemas"):
        monkeypatch.setitem(sys.modules, mod, None)  # None in sys.modules: ImportError
    res = CliRunner().invoke(main, ["serve"])
    assert res.exit_code == 1 and "pip install 'stackgan[serve]'" in res.output


def test_the_cli_and_the_library_do_not_import_the_serve_extra():
    code = (
        "import sys, stackgan, stackgan.cli, stackgan.sampling; "
        "print([m for m in ('fastapi', 'uvicorn', 'starlette') if m in sys.modules])"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_serve_help_lists_every_option_with_its_default():
    res = CliRunner().invoke(main, ["serve", "--help"])
    assert res.exit_code == 0
    for opt in ("--model", "--host", "--port", "--max-batch", "--max-wait-ms", "--queue-size"):
        assert opt in res.output
    assert "default: 127.0.0.1" in res.output and "default: 8000" in res.output
    assert "STACKGAN_API_KEY" in res.output and "stackgan serve --port 8080" in res.output


# -- fuzz ----------------------------------------------------------------------------------------


def _junk(rng: random.Random, depth: int = 0):
    """A random JSON value: unicode, huge and odd numbers, nesting."""
    kinds = ["str", "int", "float", "bool", "null", "list", "dict"]
    kind = rng.choice(kinds if depth < 3 else kinds[:5])
    if kind == "str":
        alphabet = 'ab z\u00e9\u4e2d\U0001f600\u202e\x00\t\n"\\/\ufeff\ud800\U0010ffff'
        return "".join(rng.choice(alphabet) for _ in range(rng.choice([0, 1, 5, 40, 1200])))
    if kind == "int":
        return rng.choice([0, 1, -1, 2**31, 2**53, 2**63, 2**64 + 1, -(10**40), 10**300])
    if kind == "float":
        return rng.choice([0.5, -0.0, 1e308, -1e-308, 3.0])
    if kind == "bool":
        return rng.random() < 0.5
    if kind == "null":
        return None
    if kind == "list":
        return [_junk(rng, depth + 1) for _ in range(rng.randrange(0, 5))]
    return {rng.choice(["captions", "seed", "x", ""]): _junk(rng, depth + 1) for _ in range(3)}


def _fuzz_body(rng: random.Random) -> bytes:
    fields = ["captions", "model", "seed", "num_images", "stages", "format", "extra"]
    r = rng.random()
    if r < 0.1:  # not JSON, or broken JSON
        return rng.choice([b"{", b"[1,", b"\xff\xfe", b"nul", b'{"captions": [NaN]}', b"1e999"])
    if r < 0.2:  # deep nesting
        d = rng.randrange(10, 5000)
        return b"[" * d + b"]" * d
    if r < 0.3:
        return json.dumps(_junk(rng)).encode()
    if r < 0.4:  # valid shapes, odd text: through the text encoder and the generator
        alphabet = "ab z\u00e9\u4e2d\U0001f600\u202e\x00\t\ufeff\U0010ffff"
        caps = ["".join(rng.choice(alphabet) for _ in range(rng.randrange(1, 60))) + "x"]
        return json.dumps({"captions": caps, "seed": rng.choice([0, 2**53 - 1])}).encode()
    body = {f: _junk(rng) for f in rng.sample(fields, rng.randrange(1, len(fields)))}
    if rng.random() < 0.5:  # mostly valid, one field junk: reaches the deeper checks
        body = {"captions": [STAR], "num_images": 1, "seed": 1, rng.choice(fields): _junk(rng)}
    text = json.dumps(body, ensure_ascii=rng.random() < 0.5)
    return text.encode("utf-8", "surrogatepass")


def test_fuzz_never_gives_a_5xx_and_the_server_stays_healthy(models):
    rng = random.Random(2024)
    statuses: dict[int, int] = {}
    with client_for(models, max_images=4) as c:
        for _ in range(300):
            body = _fuzz_body(rng)
            ctype = rng.choice(["application/json"] * 4 + ["text/plain", ""])
            r = c.post("/v1/images", content=body, headers={"Content-Type": ctype})
            statuses[r.status_code] = statuses.get(r.status_code, 0) + 1
            assert r.status_code < 500, (body[:200], r.status_code, r.text[:300])
            assert "error" in r.json() or r.status_code == 200
        h = c.get("/healthz").json()
        assert h["status"] == "ok" and not any(
            int(s) >= 500 for s in h["counters"]["errors_by_status"]
        )
        assert _post_images(c, captions=[STAR], seed=1).status_code == 200
    assert statuses.get(422, 0) > 50 and statuses.get(400, 0) > 10  # it reached the checks


# -- a real server: the page in headless Chromium, and a short load test ------------------------


def _bench():
    spec = importlib.util.spec_from_file_location(
        "bench_serve", ROOT / "benchmarks" / "bench_serve.py"
    )
    mod = importlib.util.module_from_spec(spec)
    sys.modules["bench_serve"] = mod  # dataclasses look their module up by name
    spec.loader.exec_module(mod)
    return mod


@pytest.fixture(scope="module")
def live_server(tmp_path_factory):
    """``stackgan serve`` as a subprocess on 127.0.0.1 (a free port), small queue."""
    bench = _bench()
    log = tmp_path_factory.mktemp("serve") / "server.log"
    with bench.server("--max-batch", "8", "--queue-size", "4", log=log) as (url, _):
        yield url, log


def test_a_short_load_test_gives_no_5xx_and_clean_503s(live_server):
    bench = _bench()
    url, log = live_server
    steady = bench.measured_level(url, 4, 24, time_limit_s=60)
    assert (steady.ok, steady.other_5xx, steady.other, steady.rejected_503) == (24, 0, 0, 0)
    assert steady.images_per_s > 0 and steady.percentile(50) <= steady.percentile(99)
    assert steady.mean_batch > 1.0  # 4 clients: requests did share generator calls
    burst = bench.run_level(url, 16, 32, time_limit_s=60)  # 16 clients, queue of 4
    assert burst.rejected_503 > 0 and burst.clean_503 and burst.ok > 0
    assert burst.other_5xx == 0 and burst.other == 0
    assert bench.healthz(url)["status"] == "ok"
    assert "POST /v1/images 200 " in log.read_text() and " batch=" in log.read_text()


def _chrome(extra_args: list[str] | None = None):
    """A headless Chromium driven by Debian's chromedriver, or a skip saying what is missing
    (``make browser`` installs both with apt-get where it runs as root)."""
    webdriver = pytest.importorskip("selenium.webdriver", reason="selenium is not installed")
    browser = next(
        (shutil.which(n) for n in ("chromium", "chromium-browser") if shutil.which(n)), None
    )
    driver = shutil.which("chromedriver") or (
        "/usr/bin/chromedriver" if os.path.exists("/usr/bin/chromedriver") else None
    )
    if browser is None or driver is None:
        missing = " and ".join(
            n for n, p in (("chromium", browser), ("chromedriver", driver)) if p is None
        )
        pytest.skip(
            f"browser test skipped: {missing} not installed (`make browser` installs Debian's "
            "chromium and chromium-driver with apt-get when run as root; or install them yourself)"
        )
    from selenium.webdriver.chrome.service import Service

    opts = webdriver.ChromeOptions()
    opts.binary_location = browser
    for a in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--window-size=1280,1100",
        "--disable-extensions",
        "--no-first-run",
        *(extra_args or []),
    ):
        opts.add_argument(a)
    return webdriver.Chrome(service=Service(executable_path=driver), options=opts)


# draws an <img> to a canvas: its size and its pixels' standard deviation (0: blank)
PIXEL_STATS = """
const img = arguments[0];
const c = document.createElement('canvas');
c.width = img.naturalWidth; c.height = img.naturalHeight;
const ctx = c.getContext('2d');
ctx.drawImage(img, 0, 0);
const d = ctx.getImageData(0, 0, c.width, c.height).data;
let s = 0, s2 = 0, n = 0;
for (let i = 0; i < d.length; i += 4) {
  for (let k = 0; k < 3; k++) { s += d[i + k]; s2 += d[i + k] * d[i + k]; n++; }
}
const m = s / n;
return [img.complete, img.naturalWidth, img.naturalHeight, Math.sqrt(s2 / n - m * m)];
"""


def _wait_state(driver, states, timeout=60):
    from selenium.webdriver.support.ui import WebDriverWait

    WebDriverWait(driver, timeout).until(
        lambda d: d.execute_script("return document.body.dataset.state") in states
    )
    return driver.execute_script("return document.body.dataset.state")


def test_the_page_generates_in_headless_chromium(live_server, monkeypatch):
    monkeypatch.setenv("SE_OFFLINE", "true")  # selenium: never download a driver or browser
    url, _ = live_server
    driver = _chrome()
    from selenium.webdriver.common.by import By

    try:
        driver.get(url + "/")
        assert _wait_state(driver, {"ready", "error"}) == "ready"
        assert not driver.find_element(By.ID, "key-row").is_displayed()  # no key on this server
        examples = driver.find_elements(By.CSS_SELECTOR, "#examples button")
        assert STAR in [b.text for b in examples]
        box = driver.find_element(By.ID, "captions")
        box.clear()
        box.send_keys(CIRCLE)
        seed = driver.find_element(By.ID, "seed")
        seed.clear()
        seed.send_keys("42")
        num = driver.find_element(By.ID, "num")
        num.clear()
        num.send_keys("2")
        driver.find_element(By.ID, "generate").click()
        assert _wait_state(driver, {"done", "error"}) == "done", driver.find_element(
            By.ID, "status"
        ).text
        imgs = driver.find_elements(By.CSS_SELECTOR, "img.stage-img")
        assert len(imgs) == 4  # 2 images x (Stage-I, Stage-II), side by side
        stats = [driver.execute_script(PIXEL_STATS, im) for im in imgs]
        assert [s[1] for s in stats] == [64, 256, 64, 256]
        assert all(s[0] and s[2] == s[1] and s[3] > 5 for s in stats), stats  # decoded, not blank
        first = [im.get_attribute("src") for im in imgs]
        link = driver.find_element(By.ID, "link").get_attribute("href")
        assert "seed=42" in link and "n=2" in link and "caption=a+tiny+violet" in link
        # the link reproduces the result: it fills the form and generates the same PNGs
        driver.get(link)
        assert _wait_state(driver, {"done", "error"}) == "done"
        assert driver.find_element(By.ID, "captions").get_attribute("value") == CIRCLE
        again = [
            im.get_attribute("src") for im in driver.find_elements(By.CSS_SELECTOR, "img.stage-img")
        ]
        assert again == first
        # a refused caption: the server's message, naming the field
        box = driver.find_element(By.ID, "captions")
        driver.execute_script("arguments[0].value = 'x'.repeat(10000);", box)
        driver.find_element(By.ID, "generate").click()
        assert _wait_state(driver, {"error"}) == "error"
        status = driver.find_element(By.ID, "status")
        assert "Error 422 [captions.0]" in status.text and "error" in status.get_attribute("class")
        # overload: the page says so, and when to come back (the 503 as the server sends it)
        driver.execute_script(
            "window.fetch = async () => new Response(JSON.stringify({status: 503, error: "
            "'the server is busy (queue full); retry in 3 s', field: null}), {status: 503, "
            "headers: {'Retry-After': '3', 'Content-Type': 'application/json'}});"
        )
        driver.execute_script("arguments[0].value = 'a star';", box)
        driver.find_element(By.ID, "generate").click()
        assert _wait_state(driver, {"error"}) == "error"
        assert "busy" in status.text and "3 s" in status.text
        assert "busy" in status.get_attribute("class")
    finally:
        driver.quit()


def save_screenshot(path: str | Path = ROOT / "docs" / "images" / "serve.png") -> Path:
    """One-off for the docs (not a test): the page after generating, as docs/images/serve.png.

    ``python -c "from tests.test_serve import save_screenshot; save_screenshot()"``"""
    bench = _bench()
    with bench.server("--max-batch", "8") as (url, _):
        driver = _chrome()
        try:
            driver.set_window_size(1240, 1000)
            driver.get(url + "/?caption=" + STAR.replace(" ", "+") + "&seed=3&n=2&model=shapes")
            _wait_state(driver, {"done"})
            path = Path(path)
            path.parent.mkdir(parents=True, exist_ok=True)
            driver.save_screenshot(str(path))
        finally:
            driver.quit()
    return path
