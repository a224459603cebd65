"""The README's `model.fit` example runs as written (on the real MNIST files)."""
import os
import re

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_readme_fit_example(mnist_dir, tmp_path, monkeypatch):
    text = open(os.path.join(REPO, "README.md")).read()
    block = re.search(r"```python\n(.*?)```", text, re.S).group(1)
    monkeypatch.setenv("TFLTH_DATA_DIR", os.path.abspath(mnist_dir))  # may be relative to the repo
    monkeypatch.chdir(tmp_path)  # the example writes TensorBoard logs to ./logs
    scope = {}
    exec(compile(block, "README.md", "exec"), scope)
    sparsity = scope["pruning"].sparsity(scope["model"])
    assert sparsity["fc1"] == pytest.approx(0.36) and sparsity["output"] == pytest.approx(0.28)
    assert sparsity["total"] == pytest.approx(0.3597, abs=1e-4)
    assert scope["init"].weights is not None and os.listdir(tmp_path / "logs")


def test_readme_your_own_model_example(capsys):
    """The second block: an attention model and MobileNetV2, made sparse and pruned to 80% in fit."""
    text = open(os.path.join(REPO, "README.md")).read()
    block = re.findall(r"```python\n(.*?)```", text, re.S)[1]
    exec(compile(block, "README.md", "exec"), {})
    assert capsys.readouterr().out.split() == ["0.8", "0.8"]


def test_bayes_doc_example(mnist_dir, tmp_path, monkeypatch):
    """docs/bayes.md's example: prune to 5% by SNR while training, predict, deploy."""
    text = open(os.path.join(REPO, "docs", "bayes.md")).read()
    block = re.search(r"```python\n(.*?)```", text, re.S).group(1)
    monkeypatch.setenv("TFLTH_DATA_DIR", os.path.abspath(mnist_dir))
    monkeypatch.chdir(tmp_path)
    scope = {}
    exec(compile(block, "docs/bayes.md", "exec"), scope)
    assert scope["pruning"].sparsity(scope["model"])["total"] == pytest.approx(0.95, abs=1e-3)
    assert scope["bayes"].calibration(scope["probs"], scope["y"])["error"] < 0.1
    x = scope["x"][:256]
    mean_mode = scope["model"].predict(x, verbose=0)
    assert abs(scope["deploy"].predict(x, verbose=0) - mean_mode).max() < 1e-4
    assert abs(scope["small"].predict(x, verbose=0) - mean_mode).max() < 1e-4
