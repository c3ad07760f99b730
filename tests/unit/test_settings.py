"""Settings read from the environment: a bad value stops the process with what is accepted."""

from __future__ import annotations

import pytest

from chalicelib.config import backfill_rate


def test_a_backfill_runs_five_a_second_unless_the_deployment_says_otherwise(monkeypatch):
    monkeypatch.delenv("NEXUS_BACKFILL_RATE_PER_SECOND", raising=False)
    assert backfill_rate() == 5
    monkeypatch.setenv("NEXUS_BACKFILL_RATE_PER_SECOND", "0.5")
    assert backfill_rate() == 0.5


@pytest.mark.parametrize("raw", ["0", "-1", "101", "nan", "inf", "fast", ""])
def test_a_backfill_rate_out_of_range_names_the_setting_and_the_range(monkeypatch, raw):
    monkeypatch.setenv("NEXUS_BACKFILL_RATE_PER_SECOND", raw)
    with pytest.raises(ValueError) as error:
        backfill_rate()
    assert "NEXUS_BACKFILL_RATE_PER_SECOND" in str(error.value)
    assert "from 0.01 to 100" in str(error.value)
