"""``benchmarks/cli_startup.py`` times real processes and reports what they imported."""

from __future__ import annotations

from benchmarks import cli_startup


def test_cli_startup_reports_times_and_no_heavy_imports(run_json, check_doc) -> None:  # type: ignore[no-untyped-def]
    doc = run_json(cli_startup.main, "--runs", "1", "--commands", "help,stats")
    check_doc(doc, "cli_startup")
    rows = {r["command"]: r for r in doc["rows"]}
    assert set(rows) == {"embedstore --help", "embedstore stats"}
    for row in rows.values():
        assert row["checkout"] == "this" and row["heavy_imports"] == "-"
        assert 0 < row["wall_min_s"] <= row["wall_median_s"] and row["cpu_median_s"] > 0
