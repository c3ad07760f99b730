"""Cold start: the import time of app.py against a bare `import boto3`, in the same run."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys

from common import ROOT, command, local_env


def import_ms(module: str) -> float:
    """Cumulative import time of `module` in a fresh interpreter, from -X importtime."""
    env = {**os.environ, "PYTHONDONTWRITEBYTECODE": "0"}
    out = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", f"import {module}"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        check=True,
    ).stderr
    for line in reversed(out.splitlines()):
        m = re.match(r"import time:\s+\d+ \|\s+(\d+) \|\s*(\S+)$", line)
        if m and m.group(2) == module:
            return int(m.group(1)) / 1000
    raise RuntimeError(f"no import line for {module}")


def main(repeats: int = 7) -> dict[str, float]:
    local_env()
    import_ms("app")  # compile the bytecode once, as a deployed package has it
    boto = min(import_ms("boto3") for _ in range(repeats))
    app = min(import_ms("app") for _ in range(repeats))
    print(
        f"import boto3: {boto:.0f} ms; import app: {app:.0f} ms; app over boto3: "
        f"{app - boto:.0f} ms (best of {repeats})"
    )
    return {"boto3_ms": boto, "app_ms": app, "over_boto3_ms": app - boto, "command": command()}


if __name__ == "__main__":
    result = main()
    (ROOT / "bench" / ".out").mkdir(exist_ok=True)
    (ROOT / "bench" / ".out" / "cold_start.json").write_text(json.dumps(result, indent=1))
