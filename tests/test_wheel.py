"""A wheel of tflth works outside the clone: `pip wheel .`, installed into a fresh virtual
environment (TensorFlow and the rest taken from the test environment: nothing is downloaded),
runs a quick lottery run by flagfile name and an export with the installed `tflth` command."""
import ast
import configparser
import glob
import os
import re
import shutil
import site
import subprocess
import sys
import sysconfig

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


CLEAN = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}  # nothing of the clone on the path


def _run(*args, **kw):
    result = subprocess.run(args, capture_output=True, text=True, timeout=1200, env=CLEAN, **kw)
    assert result.returncode == 0, (args, result.stdout[-2000:], result.stderr[-3000:])
    return result


def test_every_package_tflth_imports_is_installed_with_it():
    """What the wheel test cannot see (it borrows the test environment's packages): each
    third-party module imported in tflth/ is in install_requires or behind an extra (tflth.extras)."""
    from tflth import extras
    config = configparser.ConfigParser()
    config.read(os.path.join(REPO, "setup.cfg"))
    required = {re.split(r"[\[<>=~ ]", line.strip())[0].lower().replace("-", "_")
                for line in config["options"]["install_requires"].splitlines() if line.strip()
                and not line.strip().startswith("#")}
    distribution = {"absl": "absl_py"}  # module -> its distribution's name where they differ
    imported = set()
    for folder, _, files in os.walk(os.path.join(REPO, "tflth")):
        for name in files:
            if name.endswith(".py"):
                with open(os.path.join(folder, name)) as f:
                    for node in ast.walk(ast.parse(f.read())):
                        if isinstance(node, ast.Import):
                            imported |= {a.name.split(".")[0] for a in node.names}
                        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
                            imported.add(node.module.split(".")[0])
    third_party = imported - set(sys.stdlib_module_names) - {"tflth"}
    missing = {m for m in third_party if distribution.get(m, m) not in required and m not in extras.EXTRAS}
    assert third_party and not missing, missing


def test_the_wheel_runs_a_lottery_and_an_export_outside_the_clone(tmp_path):
    source = tmp_path / "source"  # a copy: a clone's own build/ cannot stand in for what the wheel lacks
    shutil.copytree(REPO, source, symlinks=True, ignore=shutil.ignore_patterns(
        ".git", ".venv", "build", "dist", "*.egg-info", "runs", "api", "__pycache__", ".pytest_cache"))
    _run(sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--no-index", "-q",
         "-w", str(tmp_path / "dist"), str(source))
    wheel, = glob.glob(str(tmp_path / "dist" / "tflth-*.whl"))
    venv = tmp_path / "venv"
    _run(sys.executable, "-m", "venv", "--without-pip", str(venv))
    python = str(venv / "bin" / "python")
    _run(sys.executable, "-m", "pip", "--python", python, "install", "--no-deps", "--no-index", "-q", wheel)
    # The test environment's packages (TensorFlow, Keras, ...) behind the wheel's own: a plain
    # path, so that the editable install's finder there (a .pth hook) does not run.
    packages = _run(python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])").stdout.strip()
    ours = [p for p in site.getsitepackages() if os.path.isdir(p)] or [sysconfig.get_paths()["purelib"]]
    with open(os.path.join(packages, "test_environment.pth"), "w") as f:
        f.write("\n".join(ours) + "\n")
    work = tmp_path / "elsewhere"
    work.mkdir()
    where = _run(python, "-c", "import tflth; print(tflth.__file__)", cwd=work).stdout.strip()
    assert where.startswith(packages), where  # the wheel's tflth, not the clone's
    tflth = str(venv / "bin" / "tflth")
    run = _run(tflth, "lottery", "--flagfile=mnist_lth_quick", "--levels=1", "--iterations=20", "--eval_every=10",
               "--branches=", "--quiet", "--root=runs", cwd=work)
    folder, = glob.glob(str(work / "runs" / "lottery_*"))
    assert os.path.exists(os.path.join(folder, "replicate_0", "level_1", "main", "metrics.json")), run.stdout
    export = _run(tflth, "export", f"--run_dir={folder}", "--level=1", "--format=sparse", "--out=small", cwd=work)
    assert "exported" in export.stdout and os.path.isdir(work / "small")
