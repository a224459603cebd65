"""tflth.distribute: strategies by name, checked TF_CONFIG and batch sizes, and runs under
MirroredStrategy (2 logical CPUs) and MultiWorkerMirroredStrategy (2 processes on 127.0.0.1)
that give the masks of one device, resume, and keep one BatchNorm statistic on every replica."""
import collections
import contextlib
import json
import os
import socket
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf

from tflth import distribute, io

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)


@contextlib.contextmanager
def _reserved_ports(count):
    """`count` free ports that stay taken until the block ends: each is held by a bound socket that
    never listens (so it takes no connections) with SO_REUSEPORT, which lets a TensorFlow server
    started with TF_GRPC_REUSE_PORT=1 bind the port too and refuses it to everyone else. (TF's
    gRPC server does not set SO_REUSEPORT unless that variable asks it to.) A probe closed before
    the workers start would leave the port to whichever process asks for one in between."""
    with contextlib.ExitStack() as stack:
        ports = []
        for _ in range(count):
            held = stack.enter_context(socket.socket())
            held.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
            held.bind(("0.0.0.0", 0))  # the wildcard, as TF's server binds: no address can take the port
            ports.append(held.getsockname()[1])
        yield ports


def _launch(strategy, digits_dir, root, out, levels, env=None):
    return _start([os.path.join(HERE, "distributed_run.py"), strategy, digits_dir, str(root), str(out), str(levels)],
                  env)


def _start(args, env=None):
    return subprocess.Popen([sys.executable] + args, env={**os.environ, **(env or {})}, cwd=REPO,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def _finish(*processes):
    """The outputs; if one process fails, the others (which would wait for it) are killed."""
    outputs = []
    try:
        for process in processes:
            output, _ = process.communicate(timeout=600)
            assert process.returncode == 0, output[-3000:]
            outputs.append(output)
    finally:
        for process in processes:
            if process.poll() is None:
                process.kill()
    return outputs


def _result(out):
    return io.read_npz(str(out)), io.read_json(str(out) + ".json")


def _two_workers(args):
    """Starts `args(i)` as workers 0 and 1 of a cluster on 127.0.0.1; returns their outputs."""
    with _reserved_ports(2) as ports:
        hosts = [f"127.0.0.1:{port}" for port in ports]
        return _finish(*[_start(args(i), {"TF_GRPC_REUSE_PORT": "1", "TF_CONFIG": json.dumps(
            {"cluster": {"worker": hosts}, "task": {"type": "worker", "index": i}})}) for i in range(2)])


def test_mirrored_over_two_devices_gives_the_masks_and_weights_of_one_and_resumes(digits_dir, tmp_path):
    _finish(_launch("default", digits_dir, tmp_path / "one", tmp_path / "one.npz", 2),
            _launch("mirrored2", digits_dir, tmp_path / "two", tmp_path / "two.npz", 2),
            _launch("mirrored2", digits_dir, tmp_path / "cut", tmp_path / "cut.npz", "resume"))
    (single, info1), (mirrored, info2) = _result(tmp_path / "one.npz"), _result(tmp_path / "two.npz")
    assert (info1["replicas"], info2["replicas"]) == (1, 2)
    masks = [k for k in single if k.startswith("mask/")]
    assert masks and all(np.array_equal(single[k], mirrored[k]) for k in masks)
    assert 0.5 < np.mean(single["mask/fc1"]) < 0.7  # two levels of 20% pruning happened
    for k in single:
        np.testing.assert_allclose(mirrored[k], single[k], atol=2e-5, err_msg=k)
    assert info2["versions"]["tensorflow"] == tf.__version__
    # Under op determinism Keras compiles without XLA; under 2 replicas, one step per execution.
    assert info1["compiled"] == {"jit_compile": False, "steps_per_execution": 10, "replicas": 1}
    assert info2["compiled"] == {"jit_compile": False, "steps_per_execution": 1, "replicas": 2}
    # Interrupted in the middle of level 1 and resumed under the strategy: the uninterrupted run exactly.
    resumed, info3 = _result(tmp_path / "cut.npz")
    assert info3["replicas"] == 2 and info3["test_acc"] == info2["test_acc"] and set(resumed) == set(mirrored)
    for k in mirrored:
        np.testing.assert_array_equal(resumed[k], mirrored[k], err_msg=k)


def test_two_workers_end_with_the_same_masks_one_set_of_files_and_the_recipe_resumes(digits_dir, tmp_path):
    root = tmp_path / "runs"
    _two_workers(lambda i: [os.path.join(HERE, "distributed_run.py"), "multi_worker", digits_dir, str(root),
                            str(tmp_path / f"worker{i}.npz"), "1"])
    (chief_arrays, chief), (other_arrays, other) = (_result(tmp_path / f"worker{i}.npz") for i in range(2))
    assert chief["chief"] and not other["chief"] and chief["replicas"] == other["replicas"] == 2
    assert set(chief_arrays) == set(other_arrays) and chief["test_acc"] == other["test_acc"]
    for k in chief_arrays:
        assert np.array_equal(chief_arrays[k], other_arrays[k]), k
    assert 0.7 < np.mean(chief_arrays["mask/fc1"]) < 0.9  # level 1: 20% pruned
    # One set of files: the chief's run folder under root; the other worker's copy is gone.
    folder = os.path.basename(chief["folder"])
    assert os.listdir(root) == [folder] and not os.path.exists(other["folder"])
    assert sorted(os.listdir(tmp_path)) == ["runs", "worker0.npz", "worker0.npz.json", "worker1.npz",
                                            "worker1.npz.json"]
    level1 = root / folder / "replicate_0" / "level_1" / "main" / "metrics.json"
    stamp = os.path.getmtime(level1)
    # The recipe, one level deeper with the same hyperparameters: both workers skip levels 0 and 1
    # (the chief's files) and train level 2; the chief alone reports.
    outputs = _two_workers(lambda i: [
        os.path.join("recipes", "mnist_lth.py"), f"--data_dir={digits_dir}", f"--root={root}", "--batch_size=20",
        "--validation_size=40", "--iterations=40", "--eval_every=10", "--levels=2", "--branches=",
        "--strategy=multi_worker"])
    assert f"[tflth] done: {root / folder}" in outputs[0] and "[tflth] done" not in outputs[1]
    assert os.path.getmtime(level1) == stamp and (level1.parent.parent.parent / "level_2" / "main" / "metrics.json").exists()
    assert os.listdir(root) == [folder] and sorted(os.listdir(tmp_path))[0] == "runs"


def test_batchnorm_statistics_are_averaged_over_replicas_and_a_resnet_level_runs_mirrored(digits_dir, tmp_path):
    _finish(_launch("mirrored2", digits_dir, tmp_path / "bn2", tmp_path / "bn2.npz", "batchnorm"),
            _launch("default", digits_dir, tmp_path / "bn1", tmp_path / "bn1.npz", "batchnorm"),
            _launch("mirrored2", digits_dir, tmp_path / "two", tmp_path / "two.npz", "resnet"))
    _two_workers(lambda i: [os.path.join(HERE, "distributed_run.py"), "multi_worker", digits_dir,
                            str(tmp_path / "bnw"), str(tmp_path / f"bnw{i}.npz"), "batchnorm"])
    # BatchNorm on the input images, through the engine and through a user's fit with
    # AverageReplicaStatistics: its moving statistics are equal on every replica and worker
    # (Keras alone leaves each its own) and its moving mean is the one device's (the average of
    # the replicas' halves; the variances leave out the spread between the halves' means).
    one, _ = _result(tmp_path / "bn1.npz")
    for files in ([tmp_path / "bn2.npz"], [tmp_path / "bnw0.npz", tmp_path / "bnw1.npz"]):
        copies = collections.defaultdict(list)
        for path in files:
            for key, value in _result(path)[0].items():  # "engine/replica0/moving_mean"
                how, _, name = key.split("/")
                copies[how, name].append(value)
        assert sorted(copies) == [(h, n) for h in ("engine", "fit") for n in ("moving_mean", "moving_variance")]
        for (how, name), (first, second) in copies.items():
            np.testing.assert_array_equal(first, second, err_msg=f"{how} {name}")
            # Measured: means equal, variances within 2e-7 (these digits' halves have close means).
            np.testing.assert_allclose(first, one[f"{how}/replica0/{name}"], rtol=1e-4, atol=1e-6,
                                       err_msg=f"{how} {name}")
    # ResNet-20 (convolutions, BatchNorm, shortcuts) on random CIFAR-shaped images: BatchNorm
    # normalises each replica's half batch in training, so only the level's sparsity is checked.
    arrays, info = _result(tmp_path / "two.npz")
    masks = {k[len("mask/"):]: v for k, v in arrays.items() if k.startswith("mask/")}
    assert info["replicas"] == 2 and len(masks) == 22  # 19 convs, 2 shortcut convs, the output layer
    kept = sum(m.sum() for m in masks.values()) / sum(m.size for m in masks.values())
    assert abs(kept - 0.8) < 1e-3  # one level of 20% global pruning
    for name, mask in masks.items():
        assert np.all(arrays[f"weight/{name}/kernel"][mask == 0] == 0), name
    assert all(np.all(np.isfinite(v)) for k, v in arrays.items() if "moving" in k)


def test_the_ablation_recipe_runs_as_two_workers_and_the_chief_alone_writes_the_table(digits_dir, tmp_path):
    root = tmp_path / "runs"
    outputs = _two_workers(lambda i: [
        os.path.join("recipes", "ablation.py"), f"--data_dir={digits_dir}", f"--root={root}", "--batch_size=20",
        "--validation_size=40", "--iterations=40", "--eval_every=20", "--methods=imp,gradual", "--keep=80",
        "--seeds=0", "--strategy=multi_worker"])
    assert f"[tflth] ablation written to {root / 'ablation'}" in outputs[0] and "ablation written" not in outputs[1]
    assert "| imp |" in outputs[0] and "| gradual |" in outputs[0]
    table = io.read_json(str(root / "ablation" / "ablation.json"))
    assert sorted(c["method"] for c in table["cells"]) == ["gradual", "imp"] and not table["missing"]
    assert all(abs(c["kept"] - 80.0) < 1.0 for c in table["cells"])  # IMP: its level 1
    # One set of files: the chief's two cells and the table; no worker's copy is left.
    assert sorted(f.split("_")[0] for f in os.listdir(root)) == ["ablation", "lottery", "sparse"]
    assert os.listdir(tmp_path) == ["runs"]


def test_pruning_and_rewinding_callbacks_in_a_users_fit_give_the_one_device_result(digits_dir, tmp_path):
    _finish(_launch("mirrored2", digits_dir, tmp_path / "two", tmp_path / "two.npz", "fit"),
            _launch("default", digits_dir, tmp_path / "one", tmp_path / "one.npz", "fit"))
    (mirrored, two), (single, one) = _result(tmp_path / "two.npz"), _result(tmp_path / "one.npz")
    assert two["replicas"] == 2 and one["replicas"] == 1 and set(mirrored) == set(single)
    for k in single:
        if k.startswith("mask/"):
            assert np.array_equal(single[k], mirrored[k]), k
        else:
            np.testing.assert_allclose(mirrored[k], single[k], atol=2e-5, err_msg=k)
    assert 0.6 < np.mean(single["mask/fc1"]) < 0.7  # 0.8 x 0.8 kept
    assert abs(two["test_acc"] - one["test_acc"]) < 0.02


def test_a_mixed_precision_level_runs_mirrored_with_exact_zeros(digits_dir, tmp_path):
    _finish(_launch("mirrored2", digits_dir, tmp_path / "two", tmp_path / "two.npz", "1:mixed_float16"))
    arrays, info = _result(tmp_path / "two.npz")
    assert info["replicas"] == 2 and info["test_acc"] > 0.5
    masks = {k[len("mask/"):]: v for k, v in arrays.items() if k.startswith("mask/")}
    assert masks and 0.7 < np.mean(masks["fc1"]) < 0.9
    for name, mask in masks.items():
        kernel = arrays[f"weight/{name}/kernel"]
        assert kernel.dtype == np.float32 and np.all(kernel[mask == 0] == 0) and np.all(kernel[mask == 1] != 0), name


@pytest.mark.parametrize("run", ["snip", "rigl", "l0", "snr"])
def test_gradient_scores_dynamic_sparsity_l0_gates_and_bayesian_layers_run_mirrored(digits_dir, tmp_path, run):
    stochastic = run in ("l0", "snr")  # random gates / weight draws: a replica's half batch sees other draws
    processes = [_launch("mirrored2", digits_dir, tmp_path / "two", tmp_path / "two.npz", run)]
    if not stochastic:
        processes.append(_launch("default", digits_dir, tmp_path / "one", tmp_path / "one.npz", run))
    _finish(*processes)
    mirrored, info = _result(tmp_path / "two.npz")
    kept = 100.0 * sum(mirrored[k].sum() for k in mirrored if k.startswith("mask/")) / sum(
        mirrored[k].size for k in mirrored if k.startswith("mask/"))
    assert abs(kept - (50.0 if stochastic else 20.0)) < 0.5 and info["test_acc"] > 0.5
    if not stochastic:  # deterministic layers: SNIP's masks and RigL's rewiring are the one device's
        single, _ = _result(tmp_path / "one.npz")
        assert all(np.array_equal(single[k], mirrored[k]) for k in single if k.startswith("mask/"))


@pytest.mark.parametrize("text,message", [
    ("", "TF_CONFIG is not set"),
    ("{", "TF_CONFIG is not JSON"),
    ('{"cluster": {"worker": "a:1"}, "task": {"type": "worker", "index": 0}}', "'cluster' must map task types"),
    ('{"cluster": {"worker": ["a:1"]}, "task": {"type": "ps", "index": 0}}', "'task' must have a 'type' among"),
    ('{"cluster": {"worker": ["a:1"]}, "task": {"type": "worker", "index": 1}}', "task index 1 is not in [0, 1)"),
    ('{"cluster": {"worker": ["a:1"], "ps": ["b:2"]}, "task": {"type": "ps", "index": 0}}', "task type 'ps'"),
])
def test_a_malformed_tf_config_is_named(text, message):
    with pytest.raises(ValueError, match=message.replace("[", r"\[").replace("(", r"\(").replace(")", r"\)")):
        distribute.read_tf_config(text)


def test_a_good_tf_config_is_read():
    config = distribute.read_tf_config('{"cluster": {"worker": ["a:1", "b:2"]}, "task": {"type": "worker", '
                                       '"index": 1}}')
    assert config["task"]["index"] == 1


def test_unknown_strategy_and_indivisible_batch_are_refused():
    with pytest.raises(ValueError, match=r"--strategy='gpus': allowed: default, mirrored, multi_worker, tpu"):
        distribute.get_strategy("gpus")

    class TwoReplicas:
        num_replicas_in_sync = 2
    with pytest.raises(ValueError, match=r"--batch_size=25: must be divisible by the 2 replicas"):
        distribute.check_batch_size(25, TwoReplicas())
    distribute.check_batch_size(24, TwoReplicas())


def test_one_process_is_its_own_chief_and_writes_to_root(tmp_path):
    strategy = distribute.get_strategy("default")
    assert distribute.is_chief(strategy) and distribute.num_workers(strategy) == 1
    assert distribute.xla_allowed(strategy)
    with distribute.worker_root(str(tmp_path), strategy) as root:
        assert root == str(tmp_path)


@pytest.mark.parametrize("args,env,message", [
    (["--strategy=gpus"], {}, "flag --strategy=gpus: value should be one of <default|mirrored|multi_worker|tpu>"),
    (["--strategy=multi_worker"], {"TF_CONFIG": ""}, "TF_CONFIG is not set"),
    (["--strategy=multi_worker"], {"TF_CONFIG": "{oops"}, "TF_CONFIG is not JSON"),
    (["--strategy=mirrored", "--workers=2"], {}, "--workers=2: worker processes cannot share one --strategy"),
])
def test_bad_strategy_flags_are_one_line_and_write_nothing(tmp_path, args, env, message):
    root = tmp_path / "runs"
    out = subprocess.run([sys.executable, os.path.join(REPO, "recipes", "mnist_lth.py"), f"--root={root}",
                          "--iterations=20", "--eval_every=10", "--levels=1"] + args,
                         capture_output=True, text=True, cwd=REPO, env={**os.environ, **env})
    last = out.stderr.strip().splitlines()[-1]
    assert out.returncode == 2 and last.startswith("error: ") and message in last and not root.exists()
