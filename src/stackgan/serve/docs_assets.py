"""``/docs`` that works offline: FastAPI's Swagger UI page, its JavaScript, CSS and icon served
from the package instead of the CDN FastAPI points at by default.

The assets are Swagger UI's own distribution files (npm ``swagger-ui-dist`` 5.35.0, Apache-2.0,
copied unmodified into ``static/swagger-ui/`` with its ``LICENSE`` and ``NOTICE``). Version 5 is
needed: FastAPI writes OpenAPI 3.1, which Swagger UI 4 (the PyPI ``swagger-ui-bundle`` wheel)
refuses to render.
"""

from __future__ import annotations

from fastapi import FastAPI
from fastapi.openapi.docs import get_swagger_ui_html, get_swagger_ui_oauth2_redirect_html
from fastapi.responses import HTMLResponse

SWAGGER_UI_VERSION = "5.35.0"  # of the files in static/swagger-ui/
ASSETS = "/static/swagger-ui"  # where create_app's /static mount serves them
DOCS_URL = "/docs"
OAUTH2_REDIRECT_URL = "/docs/oauth2-redirect"


def add_offline_docs(app: FastAPI) -> None:
    """Add ``GET /docs`` (Swagger UI on the app's OpenAPI schema) with every asset local.

    ``app`` must be created with ``docs_url=None`` (so FastAPI's CDN page is not registered)
    and serve the package's ``static/`` folder at ``/static``.
    """
    title = f"{app.title} API"

    async def docs() -> HTMLResponse:
        return get_swagger_ui_html(
            openapi_url=app.openapi_url or "/openapi.json",
            title=title,
            swagger_js_url=f"{ASSETS}/swagger-ui-bundle.js",
            swagger_css_url=f"{ASSETS}/swagger-ui.css",
            swagger_favicon_url=f"{ASSETS}/favicon-32x32.png",
            oauth2_redirect_url=OAUTH2_REDIRECT_URL,
            # the spec validator badge would call validator.swagger.io: off
            swagger_ui_parameters={"validatorUrl": None},
        )

    async def oauth2_redirect() -> HTMLResponse:
        return get_swagger_ui_oauth2_redirect_html()

    app.get(DOCS_URL, include_in_schema=False)(docs)
    app.get(OAUTH2_REDIRECT_URL, include_in_schema=False)(oauth2_redirect)
