"""Jobs as code: a file declares jobs by name; `apply` makes the service match it.

The file (YAML, or JSON, which YAML reads too) is a mapping `jobs:` of name -> fields, the
fields of POST /jobs/ without `name`:

    jobs:
      Daily Report:
        job_type: cron
        cron_expression: "0 9 * * 1-5"
        timezone: US/Eastern
        task_name: tasks.generate_report
        task_kwargs: {format: pdf}
        tags: [report]

(`jobs:` may also be a list of objects each with its `name`.) A field left out means the
server's default, so a job changed by hand is set back to the file. Names must be unique in
the file; on the server a job is matched by name, and a name two jobs carry is an error.

Planning is pure (`plan`: the declared jobs and the server's, in; the actions, out) and the
actions are carried out after (`execute`): `--dry-run` is the plan alone.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import yaml
from pydantic import ValidationError

from chalicelib.notify import ACCEPTED
from nexus_client.client import NexusClient
from nexus_client.models import Job, JobCreate

# The fields apply manages: everything a job is created with (the name is the identity).
MANAGED = tuple(name for name in JobCreate.model_fields if name != "name")
REDACTED = "***"


class ApplyError(ValueError):
    """The file cannot be applied: unreadable, invalid, or ambiguous against the server."""


class _UniqueKeyLoader(yaml.SafeLoader):  # type: ignore[misc]
    """PyYAML keeps the last of two equal keys without a word; a jobs file must not."""


def _unique_mapping(loader: yaml.SafeLoader, node: yaml.MappingNode, deep: bool = False) -> Any:
    seen: set[Any] = set()
    for key_node, _ in node.value:
        key = loader.construct_object(key_node, deep=deep)
        if key in seen:
            raise ApplyError(f"line {key_node.start_mark.line + 1}: '{key}' is declared twice")
        seen.add(key)
    return loader.construct_mapping(node, deep=deep)


_UniqueKeyLoader.add_constructor(
    yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG,
    _unique_mapping,
)


def load_jobs(text: str, source: str = "jobs file") -> dict[str, JobCreate]:
    """The jobs a file declares, by name, each checked with the server's model."""
    try:
        data = yaml.load(text, Loader=_UniqueKeyLoader)  # a SafeLoader that refuses duplicate keys
    except yaml.YAMLError as exc:
        raise ApplyError(f"{source} is not valid YAML: {exc}") from exc
    if isinstance(data, dict) and set(data) - {"jobs"}:
        extra = ", ".join(sorted(map(str, set(data) - {"jobs"})))
        raise ApplyError(f"{source}: unknown top-level key(s) {extra}; expected `jobs:`")
    raw = data.get("jobs") if isinstance(data, dict) else data
    entries: list[tuple[str, Any]]
    if isinstance(raw, dict):
        entries = [(str(name), fields) for name, fields in raw.items()]
        for name, fields in entries:
            if not isinstance(fields, dict):
                raise ApplyError(f"{source}: job '{name}' must be a mapping of fields")
            if "name" in fields and str(fields["name"]).strip() != name.strip():
                raise ApplyError(f"{source}: job '{name}' has another name '{fields['name']}'")
        entries = [(n, {**f, "name": n}) for n, f in entries]
    elif isinstance(raw, list):
        entries = []
        for index, fields in enumerate(raw):
            if not isinstance(fields, dict) or not fields.get("name"):
                raise ApplyError(f"{source}: jobs[{index}] must be a mapping with a `name`")
            entries.append((str(fields["name"]), fields))
    else:
        raise ApplyError(f"{source}: expected `jobs:`, a mapping of name -> job fields")
    declared: dict[str, JobCreate] = {}
    problems: list[str] = []
    for name, fields in entries:
        try:
            # The stage's own checks (its allowlists, its secrets) are the server's: a client
            # has none of its settings, so it checks the shape and the server the rest.
            job = JobCreate.model_validate(fields, context=ACCEPTED)
        except ValidationError as exc:
            for e in exc.errors(include_url=False):
                problems.append(f"{name}.{'.'.join(map(str, e['loc']))}: {e['msg']}")
            continue
        if job.name in declared:
            problems.append(f"{job.name}: declared twice; job names must be unique in the file")
        declared[job.name] = job
    if problems:
        raise ApplyError(f"{source}:\n  " + "\n  ".join(problems))
    return declared


def load_file(path: str | Path) -> dict[str, JobCreate]:
    path = Path(path)
    try:
        text = path.read_text()
    except OSError as exc:
        raise ApplyError(f"cannot read {path}: {exc.strerror}") from exc
    return load_jobs(text, str(path))


@dataclass(frozen=True)
class Change:
    field: str
    old: Any
    new: Any


@dataclass
class Action:
    kind: Literal["create", "update", "delete"]
    name: str
    job_id: int | None = None
    changes: list[Change] = field(default_factory=list)
    # What is sent: the whole job for a create, the changed fields for an update.
    body: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"action": self.kind, "name": self.name, "id": self.job_id}
        if self.kind == "update":
            out["changes"] = {c.field: {"from": c.old, "to": c.new} for c in self.changes}
        if self.kind == "create":
            out["job"] = self.body
        return out


@dataclass
class Plan:
    actions: list[Action]

    @property
    def empty(self) -> bool:
        return not self.actions

    def of(self, kind: str) -> list[Action]:
        return [a for a in self.actions if a.kind == kind]


def plan(
    declared: dict[str, JobCreate],
    server: Iterable[Job],
    *,
    tag: str | None = None,
    prune: bool = False,
) -> Plan:
    """What to create, update and delete so that the server holds the declared jobs.

    With `tag`, every declared job carries it (it is added to its tags); with `prune` too,
    the server's jobs carrying `tag` that the file does not declare are deleted."""
    if prune and not tag:
        raise ApplyError("--prune needs --tag: only jobs carrying the tag are ever deleted")
    by_name: dict[str, list[Job]] = {}
    for found_job in server:
        by_name.setdefault(found_job.name, []).append(found_job)
    ambiguous = {
        name: sorted(j.id for j in by_name.get(name, []))
        for name in declared
        if len(by_name.get(name, [])) > 1
    }
    if ambiguous:
        listed = "; ".join(
            f"'{name}' is the name of jobs {', '.join(map(str, ids))}"
            for name, ids in ambiguous.items()
        )
        raise ApplyError(
            f"cannot tell which job the file means: {listed}. Rename or delete all but one."
        )
    actions: list[Action] = []
    for name, job in declared.items():
        if tag and tag not in job.tags:
            job = job.model_copy(update={"tags": [*job.tags, tag]})
            job.model_fields_set.add("tags")
        found = by_name.get(name)
        if not found:
            actions.append(
                Action("create", name, body=job.model_dump(mode="json", exclude_unset=True))
            )
            continue
        current = found[0]
        changes = diff(job, current)
        if changes:
            sent = job.model_dump(mode="json")
            body = {c.field: sent[c.field] for c in changes}
            actions.append(Action("update", name, current.id, changes, body))
    if prune and tag:
        for name, jobs in by_name.items():
            if name in declared:
                continue
            for job in jobs:
                if tag in job.tags:
                    actions.append(Action("delete", name, job.id))
    return Plan(actions)


def diff(declared: JobCreate, current: Job) -> list[Change]:
    """The managed fields whose values differ once both sides are normalised."""
    mine = declared.model_dump(mode="json")
    theirs = current.model_dump(mode="json")
    changes = []
    for name in MANAGED:
        ours = normal(name, getattr(declared, name), declared.timezone)
        server = normal(name, getattr(current, name), current.timezone)
        if name == "task_kwargs":
            ours = _masked(ours, server)
        if ours != server:
            changes.append(Change(name, theirs.get(name), mine.get(name)))
    return changes


def normal(name: str, value: Any, timezone: str) -> Any:
    """A field's value as the server would hold it, to compare: instants in UTC (a naive one
    is wall-clock time in the job's zone, as the server reads it), tags as a set."""
    if isinstance(value, datetime):
        if value.tzinfo is None:
            try:
                value = value.replace(tzinfo=ZoneInfo(timezone))
            except (ZoneInfoNotFoundError, ValueError):
                value = value.replace(tzinfo=UTC)
        return value.astimezone(UTC).replace(microsecond=0)
    if name == "tags":
        return sorted(set(value))
    if isinstance(value, (dict, list)):
        return json.loads(json.dumps(value, sort_keys=True))
    return value


def _masked(ours: Any, server: Any) -> Any:
    """`ours` with every value the server shows as "***" (a credential it redacts) taken as
    equal: a secret in clear cannot be compared, only a secret reference can."""
    if server == REDACTED:
        return REDACTED
    if isinstance(ours, dict) and isinstance(server, dict):
        return {k: _masked(v, server.get(k)) for k, v in ours.items()}
    if isinstance(ours, list) and isinstance(server, list) and len(ours) == len(server):
        return [_masked(a, b) for a, b in zip(ours, server, strict=True)]
    return ours


def execute(actions: Plan, client: NexusClient) -> Iterator[Action]:
    """Carry out the plan, yielding each action once it is done (creates get their id)."""
    for action in actions.actions:
        if action.kind == "create":
            action.job_id = client.create_job(action.body).id
        elif action.kind == "update":
            assert action.job_id is not None
            client.update_job(action.job_id, action.body)
        else:
            assert action.job_id is not None
            client.delete_job(action.job_id)
        yield action
