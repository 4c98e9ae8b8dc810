"""Every task module implements the `Task` contract the stage scripts rely on (rnnlab.tasks.Task)."""

from __future__ import annotations

import importlib
import types
from pathlib import Path

import pytest

from rnnlab.errors import ConfigError
from rnnlab.tasks import KINDS, Task, contract_gaps, forecast, task_of
from synthetic import run_stage


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
        "DEPLOYS",
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


@pytest.mark.parametrize("kind", KINDS)
def test_a_task_deploys_or_says_what_it_offers_instead(kind):
    """A deploying task ranks its models by a training-report column (register reads reports/train/); the
    others refuse export, registry_name and register with one clear error, before reading anything."""
    task = task_of(kind)
    if task.DEPLOYS:
        assert task.COMPARE.columns[task.COMPARE.rank_by][0] == "train"
        return
    for call in (
        lambda: task.export(None, "lstm", Path("nowhere")),
        lambda: task.registry_name(None),
        lambda: task.register(None, {}, "sqlite:///nowhere.db", "name"),
    ):
        with pytest.raises(
            ConfigError, match=f"task.kind={kind} does not export or register its models; instead: "
        ):
            call()


@pytest.mark.parametrize("stage", ["export", "register"])
def test_the_deploy_stages_refuse_a_task_that_does_not_deploy(tmp_path, project_root, stage):
    """`pipelines/<stage>.py task=forecast`: one error line naming what forecast offers; nothing written."""
    args = ["task=forecast", f"paths.models_dir={tmp_path / 'models'}", f"hydra.run.dir={tmp_path / 'hydra'}"]
    done = run_stage(project_root, stage, args, expect_rc=2)
    refusal = f"task.kind=forecast does not export or register its models; instead: {forecast.NOT_DEPLOYED}"
    assert done.stderr.strip().splitlines() == [f"rnnlab: error: {refusal}"]
    assert not (tmp_path / "models").exists()
