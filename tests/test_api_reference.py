"""The API reference builds (tools/api_reference.py, pdoc), and a public name without a
docstring stops it."""
import importlib.util
import os

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
_spec = importlib.util.spec_from_file_location("api_reference", os.path.join(REPO, "tools", "api_reference.py"))
api_reference = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(api_reference)


def test_the_reference_builds_with_every_public_name_documented(tmp_path, capsys):
    assert api_reference.main(["--out", str(tmp_path)]) == 0, capsys.readouterr().err
    for module in api_reference.MODULES:
        assert (tmp_path / (module.replace(".", "/") + ".html")).is_file(), module
    pruning = (tmp_path / "tflth" / "pruning.html").read_text()
    assert 'id="PruneCallback"' in pruning and 'id="global_masks"' not in pruning  # __all__ is the public API


def test_a_public_name_without_a_docstring_is_reported(monkeypatch):
    from tflth import pruning
    monkeypatch.setattr(pruning.prune, "__doc__", None)
    assert api_reference.undocumented() == ["tflth.pruning.prune: no docstring"]


def test_a_class_inheriting_its_docstring_is_reported(monkeypatch):
    from tflth import pruning
    monkeypatch.setattr(pruning.OneShot, "__doc__", None)  # pdoc would show its base's
    assert api_reference.undocumented() == ["tflth.pruning.OneShot: no docstring"]
