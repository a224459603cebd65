"""tools/bench_export.py runs end to end on a tiny budget (its figures are BENCHMARKS.md's)."""
import os
import sys

from tflth import io

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "tools"))
import bench_export  # noqa: E402


def test_bench_export_smoke(tmp_path, capsys):
    out = tmp_path / "bench.json"
    assert bench_export.main(["--models", "lenet_300_100", "--keep", "2", "--iterations", "100", "--calls", "1",
                              "--rounds", "1", "--root", str(tmp_path / "runs"), "--out", str(out)]) == 0
    rows = io.read_json(str(out))["rows"]
    assert [(r["keep"], r["format"]) for r in rows] == [(k, f) for k in (2.0, "units") for f in bench_export.FORMATS]
    sparse = rows[1]
    assert sparse["csr_bytes"] == sparse["csr_limit_stored_index_bytes"] and sparse["variable_bytes"] < rows[0][
        "variable_bytes"] / 15
    assert rows[4]["hidden_units_removed"] >= 0.5 and all(r["ms_batch_256"] > 0 for r in rows)
    assert "at 98%: sparse variables" in capsys.readouterr().out
