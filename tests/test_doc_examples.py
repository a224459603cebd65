"""Every ```python block of README.md and docs/*.md runs as written (issue 29).

The blocks of one file run in order in one namespace, as a reader pastes them one after the
other, from an empty folder, with TFLTH_DATA_DIR at the MNIST files packaged with tflth. A
block that cannot run in the tests says why on the line above it: `<!-- not run: why -->`.
The blocks in RUN_ELSEWHERE are run by a test that also checks what they print.
"""
import glob
import os
import re

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
NOT_RUN = re.compile(r"<!-- not run: (.*) -->$")
RUN_ELSEWHERE = {  # (file, index of the block among the file's python blocks): the test that runs it
    ("README.md", 0): "tests/test_readme.py::test_readme_fit_example",
    ("README.md", 1): "tests/test_readme.py::test_readme_your_own_model_example",
    ("docs/bayes.md", 0): "tests/test_readme.py::test_bayes_doc_example",
    ("docs/export.md", 0): "tests/test_export.py::test_docs_example_runs_as_written",
}


def _files():
    return ["README.md"] + sorted(os.path.relpath(p, REPO) for p in glob.glob(os.path.join(REPO, "docs", "*.md")))


def python_blocks(name):
    """[(index, first code line (1-based), code, why it is not run or None)] of a markdown file."""
    with open(os.path.join(REPO, name)) as f:
        lines = f.read().splitlines()
    blocks, i = [], 0
    while i < len(lines):
        if lines[i].strip() == "```python":
            end = next(j for j in range(i + 1, len(lines)) if lines[j].strip() == "```")
            marker = NOT_RUN.match(lines[i - 1].strip()) if i else None
            blocks.append((len(blocks), i + 2, "\n".join(lines[i + 1:end]) + "\n", marker and marker[1].strip()))
            i = end
        i += 1
    return blocks


def _to_run(name):
    return [b for b in python_blocks(name) if b[3] is None and (name, b[0]) not in RUN_ELSEWHERE]


def test_each_block_is_run_or_says_why():
    for name in _files():
        with open(os.path.join(REPO, name)) as f:
            text = f.read()
        # a marker must sit right above a python block, or it marks nothing
        markers = len(re.findall(r"^<!-- not run:", text, re.M))
        blocks = python_blocks(name)
        assert markers == sum(b[3] is not None for b in blocks), f"{name}: a `not run` marker is not above a python block"
        for index, line, _, why in blocks:
            assert why is None or len(why) > 10, f"{name}:{line}: say why the block is not run"
            assert not (why and (name, index) in RUN_ELSEWHERE), f"{name}:{line}: marked, yet run elsewhere"
    for (name, index), test in RUN_ELSEWHERE.items():
        assert any(b[0] == index and b[3] is None for b in python_blocks(name)), (name, index, test)


@pytest.mark.parametrize("name", [name for name in _files() if _to_run(name)])
def test_examples_run_as_written(name, mnist_dir, tmp_path, monkeypatch):
    monkeypatch.setenv("TFLTH_DATA_DIR", os.path.abspath(mnist_dir))
    monkeypatch.chdir(tmp_path)  # examples may write files (logs, exports)
    scope = {"__name__": "__main__"}
    for _, line, code, _ in _to_run(name):
        # padded so that a traceback names the line of the markdown file
        exec(compile("\n" * (line - 1) + code, os.path.join(REPO, name), "exec"), scope)
