"""docs/bad-input.md names the tests that keep each row true: they exist."""
import ast
import re

from conftest import PROJECT


def test_every_test_named_in_bad_input_exists():
    text = (PROJECT / "docs" / "bad-input.md").read_text()
    named, current = [], None
    for file, name in re.findall(r"`(?:(test_\w+\.py))?::(test_\w+)`", text):
        current = file or current
        named.append((current, name))
    assert len(named) > 20
    for file, name in named:
        tree = ast.parse((PROJECT / "tests" / file).read_text())
        assert name in {f.name for f in ast.walk(tree) if isinstance(f, ast.FunctionDef)}, (file, name)
