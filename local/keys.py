"""make run's admin key: NEXUS_ADMIN_KEY when it is set; otherwise one made on the first
start and kept in <state dir>/admin-key (readable by its owner only), so it survives
restarts like the table does."""

from __future__ import annotations

import os
from datetime import UTC, datetime
from pathlib import Path

from chalicelib.security.admin import KeyService
from chalicelib.security.keys import KeyCreate, RateLimit

NAME = "admin (make run)"
# make run's own key: high limits, for benchmarks and the chaos soak on this machine.
LOCAL_ADMIN_LIMIT = RateLimit(rate=1000, burst=2000, execute_rate=100)


def admin_key_file(state_dir: Path) -> Path:
    return state_dir / "admin-key"


def bootstrap_admin_key(keys: KeyService, state_dir: Path) -> tuple[str, str]:
    """The admin key, stored in the table; and where it came from, to print."""
    now = datetime.now(UTC)
    given = os.environ.get("NEXUS_ADMIN_KEY", "").strip()
    if given:
        keys.ensure_key(given, "admin (NEXUS_ADMIN_KEY)", now)
        return given, "from NEXUS_ADMIN_KEY"
    path = admin_key_file(state_dir)
    if path.exists():
        kept = path.read_text().strip()
        keys.ensure_key(kept, NAME, now)
        return kept, f"kept in {path}"
    made = keys.create_key(
        KeyCreate(name=NAME, scopes=["keys:admin"], rate_limit=LOCAL_ADMIN_LIMIT), None, now
    )
    state_dir.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as out:
        out.write(str(made["key"]) + "\n")
    return str(made["key"]), f"made now, kept in {path}"
