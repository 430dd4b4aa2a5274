"""``/docs`` works offline: Swagger UI's assets come from the package, the page names no
external URL, and headless Chromium with every non-local host unresolvable renders it; and a
first API call without a JSON Content-Type is told what to send."""

from __future__ import annotations

import re
import socket
import threading
import time
from collections.abc import Iterator
from importlib import resources
from pathlib import Path

import pytest

pytest.importorskip("fastapi")
pytest.importorskip("httpx")  # FastAPI's TestClient

from fastapi.testclient import TestClient

from stackgan.serve import ServeConfig, create_app, load_models
from stackgan.serve.docs_assets import ASSETS

from .test_serve import _chrome

# src=, href= and url(...) targets in a page; any with a scheme or a // prefix leaves the server
REFERENCE = re.compile(r"""(?:src|href)\s*=\s*["']([^"']+)["']|url\(\s*['"]?([^'")]+)""")


@pytest.fixture(scope="module")
def app():
    return create_app(load_models(["shapes"]), ServeConfig())


def _external(html: str) -> list[str]:
    refs = [a or b for a, b in REFERENCE.findall(html)]
    return [r for r in refs if re.match(r"^(?:[a-z][a-z0-9+.-]*:)?//", r, re.I)]


def test_docs_page_and_its_assets_are_served_from_the_package(app):
    with TestClient(app) as c:
        page = c.get("/docs")
        assert page.status_code == 200 and "SwaggerUIBundle" in page.text
        assert _external(page.text) == [], _external(page.text)
        assert "cdn" not in page.text.lower()
        for name, kind in (
            ("swagger-ui-bundle.js", "javascript"),
            ("swagger-ui.css", "text/css"),
            ("favicon-32x32.png", "image/png"),
        ):
            r = c.get(f"{ASSETS}/{name}")
            assert r.status_code == 200 and kind in r.headers["content-type"], name
            assert len(r.content) > 500, name
        assert c.get("/openapi.json").json()["info"]["title"] == "stackgan"
        assert c.get("/redoc").status_code == 404  # FastAPI's CDN page is not registered


def test_swagger_ui_is_vendored_with_its_licence():
    folder = Path(str(resources.files("stackgan.serve") / "static" / "swagger-ui"))
    assert "Apache License" in (folder / "LICENSE").read_text()
    assert "SmartBear" in (folder / "NOTICE").read_text()


@pytest.fixture(scope="module")
def live_url(app) -> Iterator[str]:
    """The app on uvicorn in a thread, on a free port of 127.0.0.1."""
    uvicorn = pytest.importorskip("uvicorn")
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, log_config=None, access_log=False))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.05)
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    thread.join(timeout=10)
    sock.close()


def test_docs_render_in_headless_chromium_with_networking_off(live_url, monkeypatch):
    """Skips (saying what is missing) where chromium or chromedriver is not installed."""
    monkeypatch.setenv("SE_OFFLINE", "true")  # selenium: never download a driver or browser
    # every host name but the loopback fails to resolve: a CDN script would not load
    driver = _chrome(["--host-resolver-rules=MAP * ~NOTFOUND , EXCLUDE 127.0.0.1"])
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    try:
        driver.get(live_url + "/docs")
        WebDriverWait(driver, 60).until(
            lambda d: d.find_elements(By.CSS_SELECTOR, ".swagger-ui .opblock")
        )
        title = driver.find_element(By.CSS_SELECTOR, ".swagger-ui .info .title").text
        assert title.startswith("stackgan"), title
        paths = [e.text for e in driver.find_elements(By.CSS_SELECTOR, ".opblock-summary-path")]
        assert "/v1/images" in paths and "/healthz" in paths, paths
        loaded = driver.execute_script(
            "return performance.getEntriesByType('resource').map(e => e.name)"
        )
        assert loaded and all(u.startswith(live_url) for u in loaded), loaded
    finally:
        driver.quit()


def test_a_body_without_a_json_content_type_gets_a_hint(app):
    body = '{"captions": ["a big red star on a sky blue background"]}'
    with TestClient(app) as c:
        for ctype in ("application/x-www-form-urlencoded", "text/plain"):
            r = c.post("/v1/images", content=body, headers={"Content-Type": ctype})
            assert r.status_code == 422, r.text
            message = r.json()["error"]
            assert "Content-Type: application/json" in message and ctype in message, message
        r = c.post("/v1/images", content=body, headers={"Content-Type": "application/json"})
        assert r.status_code == 200, r.text
