"""Point a Chalice stage at its infrastructure stack's resources.

    aws cloudformation describe-stacks --stack-name nexus-dev --output json \\
        | python -m infra.configure dev

reads the stack's outputs (the JSON of `describe-stacks`, from stdin or `--outputs FILE`) and
rewrites that stage's `environment_variables` in `.chalice/config.json`: the table's name, its
change stream's ARN, and the two queues' names and URLs (the URLs and the ARN carry the account
id and the stream's label, which only the stack knows).
Every other setting of the file is left as it is. `make deploy` runs it between the stack and
`chalice deploy`.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

CONFIG = Path(__file__).resolve().parent.parent / ".chalice" / "config.json"

# Stack output -> the environment variable chalicelib/config.py reads.
VARIABLES = {
    "TableName": "NEXUS_TABLE",
    "QueueUrl": "NEXUS_QUEUE_URL",
    "QueueName": "NEXUS_QUEUE_NAME",
    "DlqUrl": "NEXUS_DLQ_URL",
    "DlqName": "NEXUS_DLQ_NAME",
    "StreamArn": "NEXUS_STREAM_ARN",
}


def stack_outputs(describe_stacks: dict[str, Any]) -> dict[str, str]:
    """The outputs of the one stack in a `describe-stacks` answer, by key."""
    stacks = describe_stacks.get("Stacks") or []
    if len(stacks) != 1:
        raise ValueError(f"expected the description of one stack, got {len(stacks)}")
    outputs = {o["OutputKey"]: o["OutputValue"] for o in stacks[0].get("Outputs") or []}
    missing = sorted(set(VARIABLES) - set(outputs))
    if missing:
        raise ValueError(f"the stack has no output {', '.join(missing)}: is it nexus.yaml?")
    return outputs


def configure(config: dict[str, Any], stage: str, outputs: dict[str, str]) -> dict[str, Any]:
    """`config` with the stage's environment variables set from the stack's outputs."""
    stages = config.get("stages", {})
    if stage not in stages:
        raise ValueError(f"no stage {stage!r} in the Chalice config ({', '.join(stages)})")
    updated = json.loads(json.dumps(config))
    env = updated["stages"][stage].setdefault("environment_variables", {})
    for output, variable in VARIABLES.items():
        env[variable] = outputs[output]
    return updated


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("stage", help="the Chalice stage to configure (dev, prod)")
    parser.add_argument("--outputs", type=Path, help="describe-stacks JSON (default: read stdin)")
    parser.add_argument("--config", type=Path, default=CONFIG, help="the Chalice config file")
    args = parser.parse_args(argv)
    raw = args.outputs.read_text() if args.outputs else sys.stdin.read()
    try:
        outputs = stack_outputs(json.loads(raw))
        config = configure(json.loads(args.config.read_text()), args.stage, outputs)
    except (ValueError, KeyError) as exc:
        print(f"configure: {exc}", file=sys.stderr)
        return 1
    args.config.write_text(json.dumps(config, indent=2) + "\n")
    env = config["stages"][args.stage]["environment_variables"]
    for variable in VARIABLES.values():
        print(f"{args.stage}: {variable}={env[variable]}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
