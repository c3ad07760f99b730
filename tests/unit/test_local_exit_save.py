"""The embedded AWS saves the table when it ends, in the very format of make run's snapshots,
so a parent killed outright loses none of its acknowledged writes."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import boto3
from moto import mock_aws

from local import state
from local.aws_process import EmbeddedAws, table_lines
from tests.tables import create_pk_sk_table

RICH_ITEM: dict[str, Any] = {
    "pk": {"S": "JOB#1"},
    "sk": {"S": "JOB"},
    "n": {"N": "12.5"},
    "b": {"B": b"\x00\xffbytes"},
    "yes": {"BOOL": True},
    "none": {"NULL": True},
    "ss": {"SS": ["a", "b"]},
    "ns": {"NS": ["1", "2"]},
    "bs": {"BS": [b"\x01", b"\x02"]},
    "m": {"M": {"inner": {"B": b"\x03"}, "l": {"L": [{"S": "x"}, {"N": "1"}, {"B": b"\x04"}]}}},
}


def test_the_table_is_saved_line_for_line_as_a_snapshot_writes_it(tmp_path):
    with mock_aws():
        db = boto3.client("dynamodb", region_name="us-east-1")
        create_pk_sk_table(db, "t")
        db.put_item(TableName="t", Item=RICH_ITEM)
        db.put_item(TableName="t", Item={"pk": {"S": "JOB#2"}, "sk": {"S": "JOB"}})
        state.snapshot(db, "t", tmp_path)
        assert table_lines("t") == state.state_file(tmp_path, "t").read_text().splitlines()
        assert table_lines("absent") is None


def client(endpoint: str) -> Any:
    return boto3.client(
        "dynamodb",
        endpoint_url=endpoint,
        region_name="us-east-1",
        aws_access_key_id="local",
        aws_secret_access_key="local",
    )


def test_the_embedded_aws_saves_the_table_it_was_told_to_when_it_ends(tmp_path):
    aws = EmbeddedAws().start()
    try:
        db = client(aws.endpoint)
        create_pk_sk_table(db, "t")
        aws.save_on_exit("t", tmp_path / "kept" / "t.jsonl")
        db.put_item(TableName="t", Item=RICH_ITEM)
    finally:
        aws.stop()
    lines = (tmp_path / "kept" / "t.jsonl").read_text().splitlines()
    assert [state.decode_item(line) for line in lines] == [RICH_ITEM]
    assert [p.name for p in (tmp_path / "kept").iterdir()] == ["t.jsonl"]  # no temp file left


def test_the_embedded_aws_saves_nothing_it_was_not_told_to(tmp_path):
    # Until the parent has restored the table, a save would write a part of it over the
    # whole file.
    target = tmp_path / "t.jsonl"
    target.write_text("the previous snapshot\n")
    aws = EmbeddedAws().start()
    try:
        create_pk_sk_table(client(aws.endpoint), "t")
    finally:
        aws.stop()
    assert target.read_text() == "the previous snapshot\n"
    assert sorted(p.name for p in Path(tmp_path).iterdir()) == ["t.jsonl"]
