"""The writer-gate benchmark in smoke mode on SQLite: one row of each kind, real figures."""

from __future__ import annotations

from benchmarks import writer_gate


def test_smoke_run_reports_the_gate_the_check_and_both_writes(run_json, check_doc) -> None:  # type: ignore[no-untyped-def]
    doc = run_json(writer_gate.main, "--smoke")
    check_doc(doc, "writer_gate")
    assert [r["kind"] for r in doc["rows"]] == ["gate", "check", "write", "write"]
    gate, check, *rows = doc["rows"]
    assert gate["backend"] == "sqlite" and gate["us"] > 0
    assert check["begin_write_us"] > 0 and check["top_seq_us"] > 0
    assert [r["op"] for r in rows] == ["remove_nothing", "add_items_1"]
    assert all(r["gate_on_us"] > 0 and r["gate_off_us"] > 0 for r in rows)
