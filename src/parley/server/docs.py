"""``/docs`` (Swagger UI) and ``/redoc`` served offline.

FastAPI's defaults load Swagger UI and ReDoc from a CDN, so the pages are blank on a
machine without internet. The assets come from ``fastapi-offline`` instead: the one
package on PyPI that ships both current bundles (Swagger UI 5, ReDoc standalone) as
plain files and depends on nothing but FastAPI. ``swagger-ui-bundle`` ships only an
old Swagger UI (4.15) and no ReDoc. We use only its static folder, with FastAPI's own
page builders, so nothing else about the app changes.
"""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html
from fastapi.responses import HTMLResponse
from starlette.staticfiles import StaticFiles

__all__ = ["DOCS_ASSETS", "mount_offline_docs"]

#: Where the assets are served from.
DOCS_ASSETS = "/docs-assets"
#: The pages may load nothing from elsewhere: ReDoc's footer would fetch its logo from
#: its CDN (unconditionally, hiding it on error); this policy keeps the browser from
#: even trying, so opening the docs tells no third party about the server.
_CSP = (
    "default-src 'self'; script-src 'self' 'unsafe-inline'; style-src 'self' 'unsafe-inline';"
    " img-src 'self' data:; worker-src 'self' blob:; connect-src 'self'"
)


def _assets() -> Path:
    return Path(str(files("fastapi_offline") / "static"))


def mount_offline_docs(api: FastAPI, *, docs_url: str = "/docs", redoc_url: str = "/redoc") -> None:
    """Add the two pages to ``api`` (built with ``docs_url=None, redoc_url=None``)."""
    openapi_url = api.openapi_url or "/openapi.json"
    api.mount(DOCS_ASSETS, StaticFiles(directory=_assets()), name="docs-assets")

    @api.get(docs_url, include_in_schema=False)
    async def swagger_ui(request: Request) -> HTMLResponse:
        root = request.scope.get("root_path", "")
        page = get_swagger_ui_html(
            openapi_url=f"{root}{openapi_url}",
            title=f"{api.title} — API",
            swagger_js_url=f"{root}{DOCS_ASSETS}/swagger-ui-bundle.js",
            swagger_css_url=f"{root}{DOCS_ASSETS}/swagger-ui.css",
            swagger_favicon_url=f"{root}{DOCS_ASSETS}/favicon.png",
            swagger_ui_parameters=api.swagger_ui_parameters,
        )
        page.headers["Content-Security-Policy"] = _CSP
        return page

    @api.get(redoc_url, include_in_schema=False)
    async def redoc(request: Request) -> HTMLResponse:
        root = request.scope.get("root_path", "")
        page = get_redoc_html(
            openapi_url=f"{root}{openapi_url}",
            title=f"{api.title} — ReDoc",
            redoc_js_url=f"{root}{DOCS_ASSETS}/redoc.standalone.js",
            redoc_favicon_url=f"{root}{DOCS_ASSETS}/favicon.png",
            with_google_fonts=False,
        )
        page.headers["Content-Security-Policy"] = _CSP
        return page
