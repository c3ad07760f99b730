"""Make the first admin key of a deployed stage.

    python -m infra.admin_key --stage dev [--name NAME] [--expires-at 2027-01-01T00:00:00Z]

(`make admin-key STAGE=dev`) writes a new key with the scope `keys:admin` to the stage's table
(NEXUS_TABLE in `.chalice/config.json`, as `infra.configure` set it), with the caller's AWS
credentials, and prints it: the whole key alone on stdout, so that it can be captured, and
what to do with it on stderr. Only its hash is stored, so it is shown this once; with it, the
other keys are made through the API (POST /v1/keys).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import boto3
from botocore.exceptions import BotoCoreError, ClientError
from pydantic import ValidationError

from chalicelib.errors import NexusError
from chalicelib.security.admin import KeyService
from chalicelib.security.keys import PREFIX, KeyCreate
from chalicelib.store import Store

CONFIG = Path(__file__).resolve().parent.parent / ".chalice" / "config.json"
DEFAULT_NAME = "admin (make admin-key)"


def stage_table(config: dict[str, Any], stage: str) -> str:
    """The table a Chalice stage's functions use: its NEXUS_TABLE."""
    stages = config.get("stages", {})
    if stage not in stages:
        raise ValueError(f"no stage {stage!r} in the Chalice config ({', '.join(stages)})")
    table = stages[stage].get("environment_variables", {}).get("NEXUS_TABLE")
    if not table:
        raise ValueError(f"stage {stage!r} has no NEXUS_TABLE: run make deploy STAGE={stage}")
    return str(table)


def make_admin_key(
    store: Store, name: str, expires_at: datetime | None, now: datetime
) -> dict[str, Any]:
    """The new key's record, with the whole key under "key" (this once)."""
    request = KeyCreate(name=name, scopes=["keys:admin"], expires_at=expires_at)
    return KeyService(store).create_key(request, None, now)


def dynamodb() -> Any:
    # The region the AWS CLI would use (`make deploy` made the table with it): the CLI reads
    # AWS_REGION before AWS_DEFAULT_REGION and the profile; botocore reads only the latter two.
    return boto3.client(
        "dynamodb",
        region_name=os.environ.get("AWS_REGION") or None,
        endpoint_url=os.environ.get("NEXUS_AWS_ENDPOINT_URL") or None,
    )


def main(argv: list[str] | None = None, now: datetime | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--stage", required=True, help="the Chalice stage (dev, prod)")
    parser.add_argument("--name", default=DEFAULT_NAME, help=f"the key's name ({DEFAULT_NAME})")
    parser.add_argument(
        "--expires-at", help="when the key stops working, ISO 8601 with an offset (never)"
    )
    parser.add_argument("--config", type=Path, default=CONFIG, help="the Chalice config file")
    args = parser.parse_args(argv)
    now = now or datetime.now(UTC)
    try:
        table = stage_table(json.loads(args.config.read_text()), args.stage)
        expires_at = None
        if args.expires_at:
            expires_at = datetime.fromisoformat(args.expires_at)
        created = make_admin_key(Store.over(dynamodb(), table), args.name, expires_at, now)
    except ValueError as exc:  # also pydantic's ValidationError
        print(f"admin-key: {_reason(exc)}", file=sys.stderr)
        return 1
    except NexusError as exc:  # an expiry in the past; DynamoDB throttling past retries
        print(f"admin-key: {exc}", file=sys.stderr)
        return 1
    except (ClientError, BotoCoreError) as exc:
        missing = isinstance(exc, ClientError) and (
            exc.response["Error"]["Code"] == "ResourceNotFoundException"
        )
        hint = f": run make deploy STAGE={args.stage} first" if missing else ""
        print(f"admin-key: table {table}: {exc}{hint}", file=sys.stderr)
        return 1

    print(created["key"])
    print(
        f"\nAdmin key {PREFIX}{created['id']} ({created['name']!r}) for stage {args.stage}, "
        f"table {table}.\nIt is shown this once and cannot be recovered (only its hash is "
        "stored). Keep it now, e.g.:\n  export NEXUS_KEY=<the key above>",
        file=sys.stderr,
    )
    return 0


def _reason(exc: ValueError) -> str:
    if isinstance(exc, ValidationError):
        return "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
    return str(exc)


if __name__ == "__main__":
    sys.exit(main())
