"""Items read back as plain Python: the fast reader gives what boto3's deserializer gives."""

from __future__ import annotations

from decimal import Decimal

from boto3.dynamodb.types import Binary, TypeDeserializer

from chalicelib.store.items import _plain, load

ITEM = {
    "s": {"S": "text"},
    "empty": {"S": ""},
    "n": {"N": "42"},
    "negative": {"N": "-7"},
    "zero": {"N": "0"},
    "float": {"N": "1.25"},
    "exponent": {"N": "1E+2"},
    "integral float": {"N": "3.0"},
    "big": {"N": "123456789012345678901234567890"},
    "yes": {"BOOL": True},
    "no": {"BOOL": False},
    "null": {"NULL": True},
    "map": {"M": {"a": {"N": "1"}, "b": {"L": [{"S": "x"}, {"N": "2.5"}, {"M": {}}]}}},
    "list": {"L": [{"NULL": True}, {"BOOL": False}, {"SS": ["b", "a"]}]},
    "strings": {"SS": ["z", "a", "m"]},
    "numbers": {"NS": ["10", "-1", "2.5"]},
    "binary": {"B": b"\x00\x01"},
}


def test_every_attribute_type_reads_as_boto3s_deserializer_then_plain_would_give_it():
    slow = {k: _plain(TypeDeserializer().deserialize(v)) for k, v in ITEM.items()}
    fast = load(ITEM)
    assert fast == slow
    assert {k: type(v) for k, v in fast.items()} == {k: type(v) for k, v in slow.items()}
    assert fast["exponent"] == 100 and isinstance(fast["exponent"], int)
    assert fast["float"] == 1.25 and fast["numbers"] == [-1, 2.5, 10]
    assert fast["binary"] == Binary(b"\x00\x01")
    assert not isinstance(fast["n"], Decimal)
