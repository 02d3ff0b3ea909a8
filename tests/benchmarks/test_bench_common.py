"""The shared benchmark pieces: recall as an intersection, the timer, the datasets, the output."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from benchmarks.common import (
    FASHION_MNIST_DIR,
    fashion_mnist,
    format_table,
    recall_at_k,
    result_doc,
    synthetic_clustered,
    timeit,
    write_result,
)


def test_recall_at_k_is_the_intersection_measure() -> None:
    gt = np.array([[1, 2, 3], [4, 5, 6]])
    assert recall_at_k(gt, gt, 3) == 1.0
    assert recall_at_k(np.array([[3, 2, 1], [6, 9, 9]]), gt, 3) == pytest.approx(4 / 6)
    assert recall_at_k(np.array([[1, 9], [9, 9]]), gt, 1) == 0.5
    assert recall_at_k(np.full((2, 3), -1), np.full((2, 3), -1), 3) == 0.0  # padding never matches


def test_timeit_reports_median_and_p90() -> None:
    calls = []
    t = timeit(lambda: calls.append(1), warmup=2, runs=5)
    assert len(calls) == 7 and t.runs == 5 and len(t.times) == 5
    assert 0 <= t.median_s <= t.p90_s


def test_synthetic_clustered_has_exact_ground_truth() -> None:
    ds = synthetic_clustered(500, 20, 32, seed=1, n_clusters=8, k=10)
    assert ds.xb.shape == (500, 32) and ds.xq.shape == (20, 32) and ds.gt.shape == (20, 10)
    np.testing.assert_allclose(np.linalg.norm(ds.xb, axis=1), 1.0, rtol=1e-5)
    brute = np.argsort(-(ds.xq @ ds.xb.T), axis=1)[:, :10]
    assert recall_at_k(brute, ds.gt, 10) > 0.99  # ties may swap, nothing else
    again = synthetic_clustered(500, 20, 32, seed=1, n_clusters=8, k=10)
    np.testing.assert_array_equal(again.xb, ds.xb)


def test_result_doc_and_write_result(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    doc = result_doc(
        "demo", {"n": 3}, [{"spec": "Flat", "qps": np.float64(12.5), "n": np.int64(3)}]
    )
    out = tmp_path / "r" / "demo.json"
    write_result(doc, out)
    captured = capsys.readouterr()
    assert captured.out == ""  # with --out, stdout stays clean
    assert "spec" in captured.err and "Flat" in captured.err
    assert json.loads(out.read_text())["rows"] == [{"spec": "Flat", "qps": 12.5, "n": 3}]
    write_result(doc, None)
    assert json.loads(capsys.readouterr().out)["benchmark"] == "demo"


def test_format_table_aligns_columns() -> None:
    text = format_table([{"a": 1, "b": "x"}, {"a": 22, "c": 0.5}])
    assert text.splitlines()[0].split() == ["a", "b", "c"]


@pytest.mark.data(FASHION_MNIST_DIR, "Debian package dataset-fashion-mnist is not installed")
def test_fashion_mnist_loads_when_installed() -> None:
    ds, yb, yq = fashion_mnist(nq=50, k=10)
    assert ds.xb.shape == (60000, 784) and ds.xq.shape == (50, 784) and ds.gt.shape == (50, 10)
    assert yb.shape == (60000,) and set(np.unique(yq)) <= set(range(10))
