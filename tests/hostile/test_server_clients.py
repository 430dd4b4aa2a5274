"""Hostile clients of ``stackgan serve`` (issue 31, points 7, 8, 9 and the server's part of 12),
against a real uvicorn server on 127.0.0.1 in a thread, with short timeouts: silent and slow
connections are closed within their deadline, a huge body of bad captions gets a small 422
fast, abandoned requests generate nothing, the API key comes before the body, and captions of
invisible characters are refused. Every client loop here is bounded and stops by itself."""

from __future__ import annotations

import http.client
import json
import select
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from typing import Any

import pytest
from click.testing import CliRunner

pytest.importorskip("fastapi")
pytest.importorskip("uvicorn")

from stackgan.cli import main
from stackgan.serve import ServeConfig, load_models
from stackgan.serve.app import bind_socket, build_server
from stackgan.text import CaptionError

HOST = "127.0.0.1"  # loopback only
STAR = "a big red star on a sky blue background"
SHORT = 0.5  # the header, body and keep-alive timeouts of these servers, in seconds
SLACK = 2.0  # a generous bound on the close: the machine may be busy


@pytest.fixture(scope="module")
def models():
    return load_models(["shapes"])


@contextmanager
def running(models, **settings: Any) -> Iterator[tuple[Any, int]]:
    """``stackgan serve``'s uvicorn server (``build_server``) in a thread on a free port of
    127.0.0.1; yields the FastAPI app and the port, and stops the server after."""
    settings = {
        "header_timeout_s": SHORT,
        "body_timeout_s": SHORT,
        "keep_alive_s": SHORT,
    } | settings
    server = build_server(models, ServeConfig(**settings))
    sock = bind_socket(HOST, 0)
    port = sock.getsockname()[1]
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    for _ in range(600):  # up to 30 s for start-up on a loaded machine
        if server.started:
            break
        time.sleep(0.05)
    assert server.started, "the server did not start"
    try:
        yield server.config.app, port
    finally:
        server.should_exit = True
        thread.join(15)
        sock.close()


@pytest.fixture(scope="module")
def live(models):
    with running(models, api_key="s3cret") as (app, port):
        yield app, port


KEY = {"X-API-Key": "s3cret"}


def _call(port: int, method: str, path: str, body: Any = None, headers=None, raw: bytes = b""):
    """One request over http.client; (status, parsed JSON body or text, raw length, seconds)."""
    conn = http.client.HTTPConnection(HOST, port, timeout=30)
    data = raw or (json.dumps(body).encode() if body is not None else None)
    hdrs = {"Content-Type": "application/json", **(headers or {})}
    t0 = time.perf_counter()
    try:
        conn.request(method, path, body=data, headers=hdrs)
        resp = conn.getresponse()
        payload = resp.read()
    finally:
        conn.close()
    dt = time.perf_counter() - t0
    try:
        parsed: Any = json.loads(payload)
    except ValueError:
        parsed = payload.decode("latin-1")
    return resp.status, parsed, len(payload), dt


def _until_closed(sock: socket.socket, trickle: bytes = b"", every_s: float = 0.1):
    """Read until the server closes ``sock``, sending one byte of ``trickle`` every ``every_s``
    meanwhile (a slow client); gives (bytes received, seconds to the close). Bounded: at most
    200 rounds."""
    t0 = time.perf_counter()
    got = b""
    sock.settimeout(every_s)
    for i in range(200):
        try:
            chunk = sock.recv(65536)
            if not chunk:
                break
            got += chunk
        except TimeoutError:
            if i < len(trickle):
                with suppress(OSError):  # closed under us: the next recv says so
                    sock.sendall(trickle[i : i + 1])
        except ConnectionResetError:
            break
    return got, time.perf_counter() - t0


def _status(raw: bytes) -> int:
    return int(raw.split(b" ", 2)[1]) if raw.startswith(b"HTTP/1.1 ") else 0


def _body(raw: bytes) -> dict[str, Any]:
    return json.loads(raw.split(b"\r\n\r\n", 1)[1])


# -- 7: silent and slow connections --------------------------------------------------------------


def test_a_silent_connection_is_closed_within_the_header_timeout(live):
    _, port = live
    with socket.create_connection((HOST, port)) as s:
        got, dt = _until_closed(s)
    assert got == b"" and SHORT * 0.8 <= dt < SHORT + SLACK  # closed quietly, on time


def test_half_a_header_trickled_byte_by_byte_gets_408_and_is_closed(live):
    _, port = live
    head = b"POST /v1/images HTTP/1.1\r\nHost: x\r\nX-Api-Key: s3cret\r\nContent-Ty"
    with socket.create_connection((HOST, port)) as s:
        s.sendall(head[:10])
        got, dt = _until_closed(s, trickle=head[10:])  # 1 byte / 0.1 s: never completes in time
    assert _status(got) == 408 and "request header" in _body(got)["error"]
    assert dt < SHORT + SLACK


def test_a_trickled_body_gets_408_within_the_body_timeout(live):
    app, port = live
    before = app.state.counters.snapshot()["responses_by_status"].get("408", 0)
    head = (
        b"POST /v1/images HTTP/1.1\r\nHost: x\r\nX-Api-Key: s3cret\r\n"
        b"Content-Type: application/json\r\nContent-Length: 1000\r\n\r\n"
    )
    with socket.create_connection((HOST, port)) as s:
        s.sendall(head + b'{"captions": ["')
        got, dt = _until_closed(s, trickle=b"a" * 100)
    assert _status(got) == 408 and _body(got)["field"] == "body"
    assert "did not arrive within 0.5 s" in _body(got)["error"]
    assert dt < SHORT + SLACK
    after = app.state.counters.snapshot()["responses_by_status"].get("408", 0)
    assert after == before + 1  # in the access log and the counters, as a 408


def test_an_idle_keep_alive_connection_is_closed_after_its_timeout(live):
    _, port = live
    with socket.create_connection((HOST, port)) as s:
        s.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        s.settimeout(10)
        first = s.recv(65536)
        assert _status(first) == 200
        _rest, dt = _until_closed(s)
    assert dt < SHORT + SLACK


def _closed(socks: list[socket.socket], wait_s: float) -> int:
    """How many of ``socks`` the server has closed after ``wait_s`` (one select over all)."""
    time.sleep(wait_s)
    readable, _, _ = select.select(socks, [], [], 0)
    n = 0
    for s in readable:
        with suppress(ConnectionResetError):
            n += s.recv(1) == b""
    return n


def test_silent_connections_at_the_limit_make_room_for_a_real_client(models):
    # queue 1 + batch 1 + 64: uvicorn's limit is 66 connections; 80 silent ones would fill it
    # for their whole (here long) header deadline, every client getting uvicorn's 503
    with running(models, queue_size=1, max_batch=1, header_timeout_s=60) as (_, port):
        silent = [socket.create_connection((HOST, port)) for _ in range(80)]
        try:
            time.sleep(0.2)
            status, body, _, dt = _call(port, "GET", "/healthz")
            assert status == 200 and body["status"] == "ok" and dt < SLACK
            # the longest waiting made room: 15 as silent sockets 66..80 came, 1 for the client
            assert _closed(silent, 0.2) == 80 - 66 + 2
        finally:
            for s in silent:
                s.close()


def test_silent_connections_are_all_closed_by_their_deadline(models):
    with running(models, queue_size=1, max_batch=1) as (_, port):
        silent = [socket.create_connection((HOST, port)) for _ in range(40)]
        try:
            assert _closed(silent, SHORT * 3) == 40  # their header deadline has passed
            status, _, _, _ = _call(port, "GET", "/healthz")
            assert status == 200
        finally:
            for s in silent:
                s.close()


# -- 8: a bounded 422 ----------------------------------------------------------------------------


def test_a_250_kb_body_of_bad_captions_gets_a_small_422_fast(live):
    _, port = live
    raw = b'{"captions": [' + b"1," * 125_000 + b"1]}"  # 250 KB: 125,001 wrong captions
    assert 250_000 < len(raw) <= 256 * 1024
    status, body, size, dt = _call(port, "POST", "/v1/images", headers=KEY, raw=raw)
    assert status == 422 and body["field"] == "captions"
    assert "125001 captions; the limit per request is 16" in body["error"] and size < 2000
    assert dt < 1.0, f"{dt:.3f} s"  # measured ~0.02 s; was 1.5 s and a 9.1 MB answer
    # 422s that do list several fields say how many there were and show the first few
    many = {"captions": [1] * 16, "seed": "x", "num_images": "y"}
    status, body, size, _ = _call(port, "POST", "/v1/images", many, headers=KEY)
    assert status == 422 and body["count"] == 18 and len(body["details"]) == 5
    assert body["details"][0]["field"] == "captions.0"


def test_thousands_of_unknown_fields_are_one_error(live):
    _, port = live
    junk = {f"k{i}": 1 for i in range(20_000)}
    status, body, size, dt = _call(port, "POST", "/v1/images", junk, headers=KEY)
    assert status == 422 and "20000 unknown fields: 'k0', 'k1', 'k2', ..." in body["error"]
    assert size < 2000 and dt < 1.0


# -- 9: abandoned requests -----------------------------------------------------------------------


def test_a_burst_of_abandoned_requests_generates_nothing(live):
    app, port = live
    batcher, counters = app.state.batcher, app.state.counters
    start = counters.snapshot()
    body = json.dumps({"captions": [STAR], "num_images": 4, "seed": 1}).encode()
    head = (
        "POST /v1/images HTTP/1.1\r\nHost: x\r\nX-Api-Key: s3cret\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
    ).encode()
    batcher.pause()  # the worker holds off, so the clients are gone before any batch starts
    try:
        clients = [socket.create_connection((HOST, port)) for _ in range(8)]
        for s in clients:
            s.sendall(head + body)
        for _ in range(200):  # all 8 queued (bounded wait)
            if batcher.depth == 8:
                break
            time.sleep(0.02)
        assert batcher.depth == 8
        for s in clients:
            s.close()
        for _ in range(200):
            if counters.snapshot()["abandoned"] - start["abandoned"] == 8:
                break
            time.sleep(0.02)
    finally:
        batcher.resume()
    status, _, _, _ = _call(port, "POST", "/v1/images", {"captions": [STAR]}, headers=KEY)
    assert status == 200  # the server goes on serving
    for _ in range(100):  # the access log counts a response just after sending it
        end = counters.snapshot()
        if end["requests"] - start["requests"] == 9:
            break
        time.sleep(0.02)
    assert end["abandoned"] - start["abandoned"] == 8
    assert end["skipped_before_generation"] - start["skipped_before_generation"] == 8
    assert end["batch_images"] - start["batch_images"] == 1  # only the last request's image
    assert end["images"] - start["images"] == 1
    by_status = {
        k: v - start["responses_by_status"].get(k, 0) for k, v in end["responses_by_status"].items()
    }
    assert by_status.get("499") == 8 and by_status.get("200") == 1  # logged as 499, not 200
    _, metrics, _, _ = _call(port, "GET", "/metrics")
    assert f"stackgan_abandoned_total {end['abandoned']}" in metrics


# -- 12: the key before the body, keys that can never match, invisible captions ------------------


def test_malformed_json_without_the_key_is_401_not_400(live):
    _, port = live
    status, body, _, _ = _call(port, "POST", "/v1/images", raw=b"{not json")
    assert status == 401 and body["field"] == "authorization"
    status, body, _, _ = _call(port, "POST", "/v1/images", headers=KEY, raw=b"{not json")
    assert status == 400 and body["field"] == "body"
    # and an over-long body from a client without the key is a 401 too: nothing is read
    status, _, _, _ = _call(port, "POST", "/v1/images", raw=b"x" * (300 * 1024))
    assert status == 401


@pytest.mark.parametrize("key", ["s3cret ", "clé", "s3\tcret"])
def test_a_key_no_request_could_match_is_refused_at_start_up(key):
    r = CliRunner().invoke(main, ["serve", "--api-key", key, "--port", "0"])
    assert r.exit_code == 1 and "Traceback" not in r.output
    (line,) = r.output.strip().splitlines()
    assert line.startswith("Error: the API key holds") and "printable ASCII" in line
    with pytest.raises(ValueError, match="printable ASCII"):
        ServeConfig(api_key=key)


@pytest.mark.parametrize(
    "caption, says",
    [
        ("\u200b\u200b\u200b", "only invisible characters"),
        ("\ufeff", "only invisible characters"),
        ("\u200b\ufeff \u2060", "only invisible characters"),
        ("\x00", "control character"),
        ("a red star\x00", "control character"),
    ],
)
def test_invisible_or_control_captions_are_refused(live, models, caption, says):
    _, port = live
    body = {"captions": [STAR, caption]}
    status, answer, _, _ = _call(port, "POST", "/v1/images", body, headers=KEY)
    assert status == 422 and answer["field"] == "captions.1" and says in answer["error"]
    # the same rule in the library, which `stackgan sample` uses
    with pytest.raises(CaptionError, match=says) as err:
        models["shapes"].sampler.check_inputs([STAR, caption])
    assert err.value.index == 1


def test_edge_invisible_characters_are_stripped_from_a_caption(models):
    assert models["shapes"].sampler.check_inputs(["\ufeff" + STAR + "\u200b "]) == [STAR]


def test_stackgan_sample_refuses_the_same_captions_in_one_line(tmp_path):
    captions = tmp_path / "captions.txt"  # ESC: a terminal escape (NUL: refused as binary)
    captions.write_text("a red star\n\u200b\u2060\n\x1b[2J\n", encoding="utf-8")
    args = ["sample", "--captions", str(captions), "--model", "shapes", "--out", str(tmp_path)]
    r = CliRunner().invoke(main, args)
    assert r.exit_code == 1 and "Traceback" not in r.output, r.output
    (line,) = r.output.strip().splitlines()
    assert line == "Error: CaptionError: caption 1 is empty (only invisible characters)"
    assert not list(tmp_path.glob("*.png"))
