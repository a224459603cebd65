"""The `tflth` command (tflth.commands) and TensorFlow's quiet start (tflth.startup)."""
import os
import subprocess
import sys

import pytest

from tflth import commands, startup

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_help_lists_every_command(capsys):
    with pytest.raises(SystemExit) as e:
        commands.main(["--help"])
    assert e.value.code == 0
    out = capsys.readouterr().out
    assert all(f"  {name} " in out for name in commands.COMMANDS)


@pytest.mark.parametrize("argv, code, says", [([], 2, "usage: tflth COMMAND"),
                                              (["lotery"], 2, "error: unknown command 'lotery'; one of: lottery,")])
def test_no_command_or_an_unknown_one_exits_2(argv, code, says, capsys):
    with pytest.raises(SystemExit) as e:
        commands.main(argv)
    captured = capsys.readouterr()
    assert e.value.code == code and says in captured.out + captured.err


def test_a_command_runs_its_module_main_with_its_defaults_and_flags(monkeypatch):
    from tflth.trainer import cli
    called = []
    monkeypatch.setattr(cli, "main", lambda **kwargs: called.append((sys.argv, kwargs)) or 0)
    monkeypatch.setattr(sys, "argv", sys.argv)
    with pytest.raises(SystemExit) as e:
        commands.main(["bayes", "--prior=horseshoe"])
    assert e.value.code == 0
    assert called == [(["tflth bayes", "--prior=horseshoe"], {"defaults": commands.COMMANDS["bayes"][1]["defaults"]})]


def test_every_command_and_recipe_names_a_main():
    for name, (module, _, _) in commands.COMMANDS.items():
        assert callable(__import__(module, fromlist=["main"]).main), name
    for recipe in os.listdir(os.path.join(REPO, "recipes")):
        if recipe.endswith(".py"):
            text = open(os.path.join(REPO, "recipes", recipe)).read()
            assert any(f'commands.main(["{name}", *sys.argv[1:]])' in text for name in commands.COMMANDS), recipe


def test_a_command_that_cannot_load_exits_2_with_one_line(monkeypatch, capsys):
    def missing(name):
        raise ImportError("tflth supports keras-tuner 1.4.x; this environment has keras-tuner 1.9.0 (...)\nmore")
    monkeypatch.setattr(commands.importlib, "import_module", missing)
    with pytest.raises(SystemExit) as e:
        commands.main(["tune"])
    assert e.value.code == 2
    assert capsys.readouterr().err == "error: tflth tune: tflth supports keras-tuner 1.4.x; this environment has " \
                                      "keras-tuner 1.9.0 (...)\n"


def test_the_hint_names_a_command_that_runs_here(monkeypatch, tmp_path):
    script = os.path.join(os.path.dirname(sys.executable), "tflth")
    monkeypatch.setattr(commands.shutil, "which", lambda name: script)
    assert commands.invocation() == "tflth"  # on the PATH: the environment is activated
    monkeypatch.setattr(commands.shutil, "which", lambda name: None)
    monkeypatch.chdir(tmp_path)
    assert commands.invocation() in (script, os.path.relpath(script))
    monkeypatch.setattr(commands.sys, "executable", str(tmp_path / "python"))  # no script beside it
    assert commands.invocation() == f"{tmp_path / 'python'} -m tflth"


def _quiet_env():
    return {k: v for k, v in os.environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"}


def test_the_installed_command_prints_its_flags_and_nothing_of_tensorflow():
    """pip installs `tflth` beside the interpreter; `tflth export --help` lists the command's flags
    (exit 0) and stderr holds none of TensorFlow's start-up lines."""
    script = os.path.join(os.path.dirname(sys.executable), "tflth")
    assert os.path.isfile(script), "reinstall: pip install -e ."
    result = subprocess.run([script, "export", "--help"], capture_output=True, text=True, env=_quiet_env(),
                            timeout=600)
    assert result.returncode == 0 and result.stderr == ""
    assert result.stdout.startswith("usage: tflth export [--flag=value ...]")
    assert "this command:\n" in result.stdout and "  --run_dir: A run folder" in result.stdout


def test_the_old_export_module_still_runs_the_command():
    result = subprocess.run([sys.executable, "-m", "tflth.export", "--help"], capture_output=True, text=True,
                            env=_quiet_env(), timeout=600)
    assert result.returncode == 0 and "  --run_dir: A run folder" in result.stdout
    assert result.stderr == "note: python -m tflth.export is now tflth export (or python -m tflth export)\n"


def test_a_training_prints_no_tensorflow_log_records(tmp_path, digits_dir):
    result = subprocess.run([sys.executable, "-m", "tflth", "train", "--iterations=10", "--eval_every=10",
                             "--batch_size=20", "--validation_size=40", "--quiet", f"--data_dir={digits_dir}",
                             f"--root={tmp_path}"], capture_output=True, text=True, env=_quiet_env(), timeout=600)
    assert result.returncode == 0, result.stderr[-2000:]
    assert not [line for line in result.stderr.splitlines() if startup._RECORD.match(line)], result.stderr


@pytest.mark.parametrize("close", ["os.close(2)", "sys.stderr = None"])
def test_tflth_imports_with_stderr_closed(close):
    code = f"import os, sys; {close}; import tflth; print('imported')"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=_quiet_env(),
                            timeout=600)
    assert result.returncode == 0 and result.stdout == "imported\n"


def test_filtered_stderr_passes_all_but_info_records(capfd):
    with startup.filtered_stderr():
        os.write(2, TENSORFLOW_START.encode() + b"a line of ours\n")
        os.write(2, b"and another\n")
    assert capfd.readouterr().err == "a line of ours\nand another\n"


TENSORFLOW_START = """\
WARNING: All log messages before absl::InitializeLog() is called are written to STDERR
I0000 00:00:1796676081.331164   10083 port.cc:153] oneDNN custom operations are on. You may see slightly different.
I0000 00:00:1796676081.428390   10083 cpu_feature_guard.cc:227] This TensorFlow binary is optimized to use available.
To enable the following instructions: AVX2 AVX512F FMA, in other operations, rebuild TensorFlow.
"""


def test_without_info_keeps_warnings_errors_and_other_lines():
    assert startup.without_info(TENSORFLOW_START) == ""
    after = "x.py:3: UserWarning: careful\n  warnings.warn('careful')\n"
    assert startup.without_info(TENSORFLOW_START + after) == after
    no_cuda = "E0000 00:00:1796677373.9   21787 cuda_platform.cc:52] failed call to cuInit: INTERNAL\n"
    no_driver = "I0000 00:00:1796676081.3   10083 cudart_stub.cc:31] Could not find cuda drivers on your machine.\n"
    assert startup.without_info(no_driver + no_cuda) == ""  # no driver: the failed cuInit says nothing new
    assert startup.without_info(no_cuda) == no_cuda
    warning = "W0000 00:00:1796676081.5   10083 gpu.cc:12] something to know\n"
    python = "sys:1: DeprecationWarning: old\n"
    assert startup.without_info(python + TENSORFLOW_START + warning) == python + warning
    header = TENSORFLOW_START.splitlines(keepends=True)[0]
    assert startup.without_info(header + warning) == header + warning  # the header of a record shown


def test_a_missing_extra_is_named(monkeypatch):
    from tflth import extras
    monkeypatch.setitem(sys.modules, "keras_tuner", None)  # as if not installed
    with pytest.raises(ImportError, match=r"^tflth.tuning \(tflth tune\) needs keras_tuner, which tflth installs as "
                                          r"an extra: pip install 'tflth\[tuning\]'$"):
        extras.need("keras_tuner", "tflth.tuning (tflth tune)")
    assert extras.need("json", "reading") is __import__("json")


def test_a_command_missing_its_extra_exits_2_naming_it(tmp_path):
    code = ("import sys; sys.modules['tensorflow_datasets'] = None; from tflth import commands; "
            f"commands.main(['lottery', '--dataset=cifar10', '--root={tmp_path}'])")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=_quiet_env(),
                            timeout=600)
    assert result.returncode == 2 and not os.listdir(tmp_path)
    assert result.stderr == "error: dataset 'cifar10' needs tensorflow_datasets, which tflth installs as an extra: " \
                            "pip install 'tflth[datasets]'\n"
