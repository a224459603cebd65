"""The flagfiles tflth ships (tflth.flagfiles): each parses with the flags of the command its
first line names, and a --flagfile given by name reads it."""
import os

import pytest
from absl import flags

from tflth import commands, flagfiles

DEFINE = {"lottery": ("tflth.lottery.cli", {}), "train": ("tflth.trainer.cli", {}), "prune": ("tflth.trainer.cli", {}),
          "bayes": ("tflth.trainer.cli", {}), "ablation": ("tflth.ablation.cli", {}),
          "tune": ("tflth.tuning.cli", {}), "tune_lottery": ("tflth.tuning.cli", {"lottery": True})}


@pytest.mark.parametrize("name", flagfiles.names())
def test_each_flagfile_parses_with_its_commands_flags(name):
    command, about = flagfiles.heading(name)
    assert command in commands.COMMANDS and about, name
    module, kwargs = DEFINE[command]
    flag_values = flags.FlagValues()
    __import__(module, fromlist=["define_run_flags"]).define_run_flags(flag_values, **kwargs)
    flag_values(["prog", *flagfiles.resolve([f"--flagfile={name}"])])  # raises on an unknown or bad flag
    with open(flagfiles.path(name)) as f:
        assert f.readline() == f"# tflth {command} --flagfile={name}\n"


def test_a_flagfile_by_name_by_file_name_or_by_path(tmp_path, monkeypatch):
    path = flagfiles.path("mnist_lth_quick")
    assert flagfiles.resolve(["prog", "--flagfile=mnist_lth_quick", "--seeds=1"]) == \
        ["prog", f"--flagfile={path}", "--seeds=1"]
    assert flagfiles.resolve(["--flagfile=mnist_lth_quick.cfg"]) == [f"--flagfile={path}"]
    assert flagfiles.resolve(["--flagfile", "mnist_lth_quick"]) == ["--flagfile", path]
    monkeypatch.chdir(tmp_path)
    (tmp_path / "mnist_lth").mkdir()  # a folder of that name (a summary's --out) hides nothing
    assert flagfiles.resolve(["--flagfile=mnist_lth"]) == [f"--flagfile={flagfiles.path('mnist_lth')}"]
    own = tmp_path / "mnist_lth_quick"  # a file of the user's own wins over the shipped name
    own.write_text("--seeds=3\n")
    assert flagfiles.resolve(["--flagfile=mnist_lth_quick"]) == ["--flagfile=mnist_lth_quick"]


@pytest.mark.parametrize("value, says", [
    ("mnist_lth_qick", "--flagfile=mnist_lth_qick: no such file, and not a flagfile tflth ships; those are: "
                       "cifar10_conv2,"),
    (os.path.join("recipes", "flags", "nope.cfg"), "no such file (tflth flags)"),
    (os.path.join("elsewhere", "flags", "mnist_lth.cfg"), "no such file; tflth ships mnist_lth: --flagfile=mnist_lth")])
def test_an_unknown_flagfile_is_one_line(value, says):
    with pytest.raises(ValueError) as e:
        flagfiles.resolve([f"--flagfile={value}"])
    assert says in str(e.value) and "\n" not in str(e.value)


def test_tflth_flags_help(capsys, monkeypatch):
    monkeypatch.setattr("sys.argv", ["tflth flags", "--help"])
    assert flagfiles.main() == 0 and capsys.readouterr().out.startswith("usage: tflth flags")
    monkeypatch.setattr("sys.argv", ["tflth flags", "mnist"])
    assert flagfiles.main() == 2


def test_tflth_flags_lists_them(capsys, monkeypatch):
    monkeypatch.setattr("sys.argv", ["tflth flags"])
    assert flagfiles.main() == 0
    out = capsys.readouterr().out
    assert "mnist_lth_quick         tflth lottery       A quick lottery-ticket run" in out
    assert len([line for line in out.splitlines() if "  tflth " in line]) == len(flagfiles.names())
