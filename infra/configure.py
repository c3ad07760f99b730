"""Point a Chalice stage at its infrastructure stack's resources.

Rewrites that stage's `environment_variables` in `.chalice/config.json` from the stack's
outputs: the table's name, its change stream's ARN, and the two queues' names and URLs (the
URLs and the ARN carry the account id and the stream's label, which only the stack knows).
Every other setting of the file is left as it is.

`make deploy` does it through `python -m infra.stack deploy STAGE` (`write_stage`), once the
stack has settled. The same from a `describe-stacks` answer, on stdin or in `--outputs FILE`:

    aws cloudformation describe-stacks --stack-name nexus-dev --output json \\
        | python -m infra.configure dev
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


def write_stage(path: Path, stage: str, outputs: dict[str, str]) -> dict[str, str]:
    """Set the stage's variables in the Chalice config file at `path` from the stack's
    outputs, and return them by name. The file is written only once they are all known, so
    an error leaves it as it was."""
    config = configure(json.loads(path.read_text()), stage, outputs)
    path.write_text(json.dumps(config, indent=2) + "\n")
    env = config["stages"][stage]["environment_variables"]
    return {variable: env[variable] for variable in VARIABLES.values()}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("stage", help="the Chalice stage to configure (dev, prod)")
    parser.add_argument("--outputs", type=Path, help="describe-stacks JSON (default: read stdin)")
    parser.add_argument("--config", type=Path, default=CONFIG, help="the Chalice config file")
    args = parser.parse_args(argv)
    raw = args.outputs.read_text() if args.outputs else sys.stdin.read()
    try:
        written = write_stage(args.config, args.stage, stack_outputs(json.loads(raw)))
    except (ValueError, KeyError) as exc:
        print(f"configure: {exc}", file=sys.stderr)
        return 1
    for variable, value in written.items():
        print(f"{args.stage}: {variable}={value}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
