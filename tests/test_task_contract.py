"""Every task module implements the `Task` contract the stage scripts rely on (rnnlab.tasks.Task)."""

from __future__ import annotations

import importlib
import types
from pathlib import Path

import pytest

from rnnlab.tasks import KINDS, Task, contract_gaps


@pytest.mark.parametrize("kind", KINDS)
def test_every_task_implements_the_contract(kind):
    assert contract_gaps(importlib.import_module(f"rnnlab.tasks.{kind}")) == []


def test_a_module_that_breaks_the_contract_is_named():
    module = importlib.import_module("rnnlab.tasks.forecast")
    broken = types.ModuleType("broken")
    vars(broken).update({k: v for k, v in vars(module).items() if k not in ("HAS_TEST", "artifacts")})
    broken.evaluate = lambda cfg, model, folder: None
    assert contract_gaps(broken) == [
        "no HAS_TEST",
        "no function artifacts(cfg)",
        "evaluate(cfg, model, folder) instead of evaluate(cfg, name, model, data, folder)",
    ]
    assert set(Task.__annotations__) == {
        "HAS_TEST",
        "COMPARE",
        "COMPARE_HEADER",
        "MONITORS",
        "SOURCE_KINDS",
        "RULES",
    }


def test_a_submodule_named_like_a_contract_member_is_refused(tmp_path):
    """`<pkg>/datamodule.py` would replace the package's `datamodule` function once something imports it."""
    (tmp_path / "datamodule.py").write_text("")
    package = types.ModuleType("package")
    vars(package).update(vars(importlib.import_module("rnnlab.tasks.forecast")))
    package.__path__ = [str(tmp_path)]
    assert contract_gaps(package) == [
        "submodule datamodule.py: importing it replaces the contract's datamodule; rename it"
    ]


def test_the_tasks_are_the_packages_of_rnnlab_tasks():
    folder = Path(importlib.import_module("rnnlab.tasks").__file__).parent
    assert set(KINDS) == {path.parent.name for path in folder.glob("*/__init__.py")}
    assert {"classification", "forecast", "charlm"} <= set(KINDS)
