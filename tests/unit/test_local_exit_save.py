"""The embedded AWS saves the table when it ends, in the very format of make run's snapshots,
so a parent killed outright loses none of its acknowledged writes."""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError
from moto import mock_aws

from local import aws_process, state
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


def test_a_parent_killed_outright_has_the_writes_made_after_its_death_saved_too(tmp_path):
    # make run's main process killed: the embedded AWS's stdin closes, and so does the
    # real-time process's, whose feed then counts the stream's last runs: those writes come
    # after the stdin closed, and the table is saved with them.
    aws = EmbeddedAws().start()
    try:
        db = client(aws.endpoint)
        create_pk_sk_table(db, "t")
        aws.save_on_exit("t", tmp_path / "t.jsonl")
        assert aws._proc is not None and aws._proc.stdin is not None
        aws._proc.stdin.close()  # as the parent's death closes it
        for n in range(5):
            db.put_item(TableName="t", Item={"pk": {"S": f"COUNT#{n}"}, "sk": {"S": "C"}})
            time.sleep(0.06)
    finally:
        aws.stop()
    lines = (tmp_path / "t.jsonl").read_text().splitlines()
    saved = [state.decode_item(line)["pk"]["S"] for line in lines]
    assert sorted(saved) == [f"COUNT#{n}" for n in range(5)]


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


def requests_for(seconds: float) -> threading.Thread:
    """A client of the embedded AWS, as the stream feed is: a request every 50 ms."""

    def poll() -> None:
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            aws_process.LAST_REQUEST[0] = time.monotonic()
            time.sleep(0.05)

    thread = threading.Thread(target=poll)
    thread.start()
    return thread


def test_the_save_at_exit_waits_for_the_requests_still_coming_to_end():
    # The real-time feed draining the stream after make run was killed: its last requests
    # (the stats' count among them) must land before the table is saved.
    client = requests_for(0.6)
    waited = aws_process.wait_for_quiet(quiet=0.2, limit=5.0)
    client.join()
    assert 0.6 + 0.2 - 0.06 <= waited < 5.0


def test_the_save_at_exit_waits_no_longer_than_its_limit_for_a_client_that_never_stops():
    client = requests_for(2.0)
    waited = aws_process.wait_for_quiet(quiet=0.2, limit=0.5)
    client.join()
    assert 0.5 <= waited < 2.0


def item(n: int, **more: Any) -> dict[str, Any]:
    return {"pk": {"S": f"JOB#{n}"}, "sk": {"S": "JOB"}, **more}


def table_items(db: Any) -> list[dict[str, Any]]:
    items = db.scan(TableName="t", ConsistentRead=True)["Items"]
    return sorted(items, key=lambda i: (i["pk"]["S"], i["sk"]["S"]))


def test_every_write_answered_before_the_whole_stack_is_killed_outright_is_restored(tmp_path):
    # SIGKILL to make run's whole process group: no process gets to save the table. Each
    # write was journaled before it was answered, and the restore reads the journal.
    aws = EmbeddedAws().start()
    try:
        db = client(aws.endpoint)
        create_pk_sk_table(db, "t")
        db.put_item(TableName="t", Item=item(0, count={"N": "1"}))
        aws.save_on_exit("t", tmp_path / "t.jsonl")
        db.put_item(TableName="t", Item={**RICH_ITEM, "pk": {"S": "JOB#9"}})
        for n in (1, 2, 3):
            db.put_item(TableName="t", Item=item(n))
        db.update_item(
            TableName="t",
            Key=item(1),
            UpdateExpression="SET label = :l",
            ExpressionAttributeValues={":l": {"S": "changed"}},
        )
        db.delete_item(TableName="t", Key=item(2))
        db.batch_write_item(
            RequestItems={
                "t": [{"PutRequest": {"Item": item(4)}}, {"DeleteRequest": {"Key": item(3)}}]
            }
        )
        db.transact_write_items(
            TransactItems=[
                {"Put": {"TableName": "t", "Item": item(5)}},
                {
                    "Update": {
                        "TableName": "t",
                        "Key": item(0),
                        "UpdateExpression": "ADD #c :one",
                        "ExpressionAttributeNames": {"#c": "count"},
                        "ExpressionAttributeValues": {":one": {"N": "1"}},
                    }
                },
            ]
        )
        with pytest.raises(ClientError):  # refused: changes nothing, journals nothing
            db.put_item(TableName="t", Item=item(0), ConditionExpression="attribute_not_exists(pk)")
        expected = table_items(db)
        assert aws._proc is not None
        aws._proc.kill()
        aws._proc.wait()
    finally:
        aws.stop()
    assert [i["pk"]["S"] for i in expected] == ["JOB#0", "JOB#1", "JOB#4", "JOB#5", "JOB#9"]
    with mock_aws():
        fresh = boto3.client("dynamodb", region_name="us-east-1")
        create_pk_sk_table(fresh, "t")
        assert state.restore(fresh, "t", tmp_path) == len(expected)
        assert table_items(fresh) == expected


def test_a_long_journal_is_folded_into_the_file_and_the_two_still_make_the_table(
    tmp_path, monkeypatch
):
    with mock_aws():
        aws_process.serialise_dynamodb()
        db = boto3.client("dynamodb", region_name="us-east-1")
        create_pk_sk_table(db, "t")
        monkeypatch.setattr(aws_process, "JOURNAL_LIMIT", 2_000)
        journal = aws_process.Journal("t", tmp_path / "t.jsonl")
        monkeypatch.setitem(aws_process.JOURNALS, "t", journal)
        for n in range(60):
            db.put_item(TableName="t", Item=item(n % 40, v={"N": str(n)}))
        expected = table_items(db)
        files = aws_process.journal_files(tmp_path / "t.jsonl")
        monkeypatch.delitem(aws_process.JOURNALS, "t")
        journal._file.close()
    assert (tmp_path / "t.jsonl").exists() and len(files) < 5  # folded, the old ones gone
    with mock_aws():
        fresh = boto3.client("dynamodb", region_name="us-east-1")
        create_pk_sk_table(fresh, "t")
        assert state.restore(fresh, "t", tmp_path) == 40
        assert table_items(fresh) == expected
