"""The documentation page: Swagger UI on the API's own document, every file served by the API.

Nothing is loaded from elsewhere at run time (no CDN): the page, its scripts and its styles
come from `static/`, by name from `ASSETS` only, so a request cannot reach any other file.
The page and its files are open (no key): they hold no job data, and the calls made from the
page ("Try it out") carry the key the reader types in, as any client's do.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path

STATIC = Path(__file__).resolve().parent / "static"


@dataclass(frozen=True)
class Asset:
    path: Path
    content_type: str


# The only files /docs/{asset} serves: a name not here is a 404, whatever it contains.
ASSETS: dict[str, Asset] = {
    "swagger-ui-bundle.js": Asset(
        STATIC / "swagger-ui" / "swagger-ui-bundle.js", "text/javascript; charset=utf-8"
    ),
    "swagger-ui.css": Asset(STATIC / "swagger-ui" / "swagger-ui.css", "text/css; charset=utf-8"),
    "nexus-docs.js": Asset(STATIC / "nexus-docs.js", "text/javascript; charset=utf-8"),
}

# The page is at .../api/v1/docs: "docs/x" and "openapi.json" resolve beside it, whatever
# the host and stage. Swagger UI sets inline styles on its elements, hence 'unsafe-inline'
# for styles only; its "Try it out" calls the API on the same origin.
PAGE = """<!DOCTYPE html>
<html lang="en">
<head>
  <meta charset="utf-8">
  <meta name="viewport" content="width=device-width, initial-scale=1">
  <title>NEXUS Scheduler API</title>
  <link rel="stylesheet" href="docs/swagger-ui.css">
</head>
<body>
  <div id="swagger-ui"></div>
  <script src="docs/swagger-ui-bundle.js"></script>
  <script src="docs/nexus-docs.js"></script>
</body>
</html>
"""
PAGE_HEADERS = {
    "Content-Type": "text/html; charset=utf-8",
    "Content-Security-Policy": (
        "default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
        "img-src 'self' data:; connect-src 'self'; frame-ancestors 'none'; base-uri 'none'"
    ),
    "Cache-Control": "no-cache",
}
ASSET_CACHE = "public, max-age=3600"


@functools.lru_cache(maxsize=len(ASSETS))
def read(name: str) -> str:
    """An asset's text; KeyError for a name that is not in ASSETS."""
    return ASSETS[name].path.read_text(encoding="utf-8")
