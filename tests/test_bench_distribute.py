"""tools/bench_distribute.py (the check to run on a GPU machine) runs end to end on a tiny
budget, two replicas on the CPU."""
import os
import subprocess
import sys

from tflth import io

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_bench_distribute_smoke(tmp_path):
    out, masks = tmp_path / "bench.json", tmp_path / "masks.npz"
    # A subprocess: logical devices must be set before TensorFlow starts.
    run = subprocess.run([sys.executable, os.path.join(REPO, "tools", "bench_distribute.py"), "--model=conv2",
                          "--batch_size=8", "--iterations=20", "--rounds=1", "--logical_devices=2", "--probe_steps=10",
                          "--digest_iterations=10", "--train_size=200", "--no-deterministic", f"--masks_out={masks}",
                          f"--out={out}"],
                         capture_output=True, text=True, cwd=REPO, timeout=600)
    assert run.returncode == 0, run.stdout[-2000:] + run.stderr[-2000:]
    result = io.read_json(str(out))
    assert result["replicas"] == 2 and len(result["probes"]) == 4 and not result["errors"]
    # Under 2 replicas on CPUs, XLA and Keras' loop of several steps per execution fail (why the
    # engine compiles one step per execution without XLA there): the probes must say so.
    probes = result["probes"]
    assert probes["jit_compile=False,steps_per_execution=1"]["ok"]
    assert "Trying to access resource" in probes["jit_compile=True,steps_per_execution=1"]["error"]
    assert "must feed a value for placeholder" in probes["jit_compile=False,steps_per_execution=10"]["error"]
    assert result["floor"] == "jit_compile=False,steps_per_execution=1"  # the engine's options here
    assert set(result["ms_per_step"]) == {"floor", "runner", "runner_wall"}
    assert all(len(v) == 1 for v in result["ms_per_step"].values())
    assert result["median_ms_per_step"]["runner_wall"] > 0  # steady states can come out <= 0 at 20 steps
    assert abs(result["digest"]["kept"] - 0.8) < 0.01 and len(result["digest"]["sha256"]) == 64
    assert sorted(io.read_npz(str(masks))) == ["conv1", "conv2", "fc1", "fc2", "output"]
    assert "| runner_wall |" in run.stdout
