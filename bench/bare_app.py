"""A bare Chalice route served the way NEXUS is served locally: the API benchmark's baseline."""

from __future__ import annotations

import sys

from chalice import Chalice
from common import ROOT  # noqa: F401  (puts the project on sys.path)

from local.gateway import make_server

app = Chalice(app_name="bare")


@app.route("/v1/ping")
def ping() -> dict[str, bool]:
    return {"ok": True}


if __name__ == "__main__":
    make_server(app, "127.0.0.1", int(sys.argv[1]), quiet=True).serve_forever()
