"""The dashboard: a page and its files, served by the API itself at /api/ui (no build step).

Every file is in `static/ui/`; a request names one by its file name, and only the names found
there with a known type are served, so a request cannot reach any other file. The page and
its files are open (no key): they hold no job data; the page signs in with a key the user
types, kept in the tab's session storage, and sends it on every call as any client does.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent / "static" / "ui"
PAGE_NAME = "index.html"

TYPES = {
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".svg": "image/svg+xml",
}


@dataclass(frozen=True)
class Asset:
    path: Path
    content_type: str


def _assets() -> dict[str, Asset]:
    if not ROOT.is_dir():
        return {}
    return {
        p.name: Asset(p, TYPES[p.suffix])
        for p in sorted(ROOT.iterdir())
        if p.is_file() and p.suffix in TYPES
    }


# The only files /ui/{asset} serves: a name not here is a 404, whatever it contains.
ASSETS: dict[str, Asset] = _assets()

# The page calls the API on its own origin and the WebSocket URL that GET /v1/realtime names
# (another port on make run, hence ws: and wss: in connect-src).
PAGE_HEADERS = {
    "Content-Type": "text/html; charset=utf-8",
    "Content-Security-Policy": (
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        "connect-src 'self' ws: wss:; frame-ancestors 'none'; base-uri 'none'; form-action 'none'"
    ),
    "Cache-Control": "no-cache",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}
ASSET_CACHE = "no-cache"


@functools.lru_cache(maxsize=1)
def page() -> str:
    return (ROOT / PAGE_NAME).read_text(encoding="utf-8")


@functools.lru_cache(maxsize=64)
def read(name: str) -> str:
    """An asset's text (every type served is text); KeyError for a name not in ASSETS."""
    return ASSETS[name].path.read_text(encoding="utf-8")
