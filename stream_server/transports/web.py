"""The browser demo: `GET /` is its page, `/static/...` its scripts, straight from `clients/web/`.

No build step: the folder is served as it is. Starlette's `StaticFiles` resolves every path inside
the folder and refuses anything that would step out of it.
"""

from __future__ import annotations

from pathlib import Path

from starlette.responses import FileResponse
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles

from ..settings import Settings

# stream_server/transports/web.py → the repository root → clients/web
SOURCE_TREE_WEB_DIR = Path(__file__).resolve().parents[2] / "clients" / "web"


def web_dir(settings: Settings) -> Path | None:
    """The demo's folder, or None when it is switched off (`--web-dir ''`) or not there (a wheel install)."""
    if settings.web_dir == "":
        return None
    folder = Path(settings.web_dir) if settings.web_dir is not None else SOURCE_TREE_WEB_DIR
    return folder if (folder / "index.html").is_file() else None


def web_routes(settings: Settings) -> list[BaseRoute]:
    folder = web_dir(settings)
    if folder is None:
        return []
    index = folder / "index.html"

    async def page(_request: object) -> FileResponse:
        return FileResponse(index, media_type="text/html; charset=utf-8", headers={"Cache-Control": "no-cache"})

    return [
        Route("/", page, methods=["GET", "HEAD"]),
        Mount("/static", app=StaticFiles(directory=folder), name="static"),
    ]
