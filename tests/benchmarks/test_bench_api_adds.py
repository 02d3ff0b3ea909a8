"""``benchmarks/api_adds.py`` serves a real uvicorn and times folder adds through it."""

from __future__ import annotations

import pytest
from testdata import ASSETS

from benchmarks import api_adds


@pytest.mark.slow  # a server process and its decode pool start (about 10 s on 2 cores)
@pytest.mark.data(ASSETS, "the reference photos the crops are cut from")
def test_api_adds_times_each_add_and_indexes_every_file(run_json, check_doc) -> None:  # type: ignore[no-untyped-def]
    doc = run_json(api_adds.main, "--smoke", "--workers", "1")
    check_doc(doc, "api_adds")
    (row,) = doc["rows"]
    assert row["checkout"] == "this" and row["workers"] == 1
    assert row["added"] == 2 * 17 and row["failed"] == 0 and row["deduplicated"] == 0
    assert len(row["runs"]) == 1 and len(row["runs"][0]) == 2
    assert all(t > 0 for t in row["runs"][0])
