"""A tally's record write stays within DynamoDB's expression limits at its fullest (every line of the
tally in one stream batch): 300 operators or functions and 4 KB per expression."""

from __future__ import annotations

from runrelay.adapters.dynamodb.schema import tally_key
from runrelay.adapters.dynamodb.tallies import record_action, source_and_tally
from runrelay.domain.jobs import TALLY_LINES, FinalLine

SOURCE = "s3://bucket/incoming/a#b.jsonl#etag"


def test_a_full_tally_is_one_write_within_the_expression_limits() -> None:
    lines = [FinalLine(f"t{seq}", SOURCE, seq, attempt=9) for seq in range(TALLY_LINES)]
    update = record_action("tasks", SOURCE, 0, lines, expires=0)["Update"]
    condition = update["ConditionExpression"]
    operators = sum(condition.count(word) for word in ("contains(", " OR ", " AND ", "NOT "))
    assert operators <= 300
    assert len(condition.encode()) <= 4096
    assert len(update["UpdateExpression"].encode()) <= 4096
    assert len(update["ExpressionAttributeValues"][":marks"]["NS"]) == TALLY_LINES


def test_a_tally_key_names_its_source_and_number_even_with_hashes_in_the_source() -> None:
    assert source_and_tally(tally_key(SOURCE, 12)["pk"]["S"]) == (SOURCE, 12)
