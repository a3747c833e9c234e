"""The warning filters of pyproject.toml: embedops' own warnings fail a test, third-party ones are accepted by name."""

from __future__ import annotations

import tomllib
import warnings
from pathlib import Path

import pytest

PYPROJECT = Path(__file__).resolve().parents[1] / "pyproject.toml"


def test_a_deprecation_raised_from_embedops_code_fails_the_test() -> None:
    code = compile("import warnings\nwarnings.warn('old API', DeprecationWarning)", "embedops_example.py", "exec")
    with pytest.raises(DeprecationWarning, match="old API"):
        exec(code, {"__name__": "embedops.core.example"})


def test_a_third_party_warning_is_shown_not_silenced() -> None:
    code = compile("import warnings\nwarnings.warn('old API', DeprecationWarning)", "somelib.py", "exec")
    with warnings.catch_warnings(record=True) as seen:
        exec(code, {"__name__": "somelib"})
    assert [str(w.message) for w in seen] == ["old API"]


def test_every_accepted_warning_is_named_by_its_message() -> None:
    filters = tomllib.loads(PYPROJECT.read_text())["tool"]["pytest"]["ini_options"]["filterwarnings"]
    ignored = [f for f in filters if f.startswith("ignore")]
    assert ignored and all(f.split(":")[1] for f in ignored), ignored
    assert all(f.split(":")[3] for f in filters if f.startswith("error")), "errors are for our own modules"
