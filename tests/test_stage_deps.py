"""Every DVC stage depends on the project code its script runs, so that editing that code reruns the stage.

For each stage of the four pipelines, as DVC resolves them (foreach and vars expanded), the script of its
`cmd` (pipelines/<x>.py) is followed through its `rnnlab.*` imports (tests/module_imports.py says how, with
`task_module(cfg)` giving the `task.kind` of the params file the command names), and each module file reached
must lie under one of the stage's `deps`: the file itself, or a folder holding it.

Deps are per module, not src/ as a whole: a stage depending on all of src/ would rerun on any edit, and
`train@` takes hours. The other way round too: a dep under src/ that names a module the script never runs,
or a task package as a whole, would rerun the stage on edits that cannot change it. A folder dep is right for
the shared packages a stage uses most of (src/rnnlab/models).
Not required, nor followed further, because an edit to them cannot change what a successful stage writes:
package `__init__` files holding only a docstring (and `__version__`), and NO_RESULTS below.
"""

from __future__ import annotations

import ast
import shlex
from pathlib import Path

import pytest
import yaml
from dvc.repo import Repo

from module_imports import SRC, imported_modules, is_docstring, module_file, required_modules, task_members

ROOT = SRC.parent
PIPELINES = ("dvc.yaml", *sorted(str(p.relative_to(ROOT)) for p in (ROOT / "pipelines").glob("*/dvc.yaml")))
# Modules that only check or report: an edit can refuse a config or reword a message, never change a result.
# Keep this list short, and say why for each.
NO_RESULTS = {
    "rnnlab.errors": "exception classes",
    "rnnlab.rules": "the building blocks of config validation: accept, or raise ConfigError",
    "rnnlab.validation": "checks every config value before a stage starts: accept, or raise ConfigError",
    "rnnlab.stage": "the entry point: validates the config named on the command line and hands it on "
    "unchanged, turns errors into one line, prints the summary line",
}


def inert(path: Path) -> bool:
    """A package `__init__` holding only a docstring and `__version__`: importing it computes nothing."""
    body = ast.parse(path.read_text(encoding="utf-8")).body
    version = [n for n in body if isinstance(n, ast.Assign) and ast.unparse(n.targets[0]) == "__version__"]
    return path.name == "__init__.py" and sum(map(is_docstring, body)) + len(version) == len(body)


def cannot_change_results(name: str, path: Path) -> bool:
    return name in NO_RESULTS or inert(path)


def task_kind(cmd: list[str], wdir: Path) -> str:
    """`task.kind` in the params file the command composes (`--config-dir D --config-name N`)."""
    config = wdir / cmd[cmd.index("--config-dir") + 1] / f"{cmd[cmd.index('--config-name') + 1]}.yaml"
    return yaml.safe_load(config.read_text(encoding="utf-8"))["task"]["kind"]


def stage_modules(stage) -> tuple[dict[Path, str], list[Path]]:
    """({module file the stage's script runs: its import chain}, [the stage's deps as paths])."""
    wdir = Path(stage.wdir)
    cmd = shlex.split(stage.cmd)
    scripts = [word for word in cmd if word.startswith("pipelines/") and word.endswith(".py")]
    assert cmd[0] == "python" and len(scripts) == 1, f"{stage.addressing}: not `python pipelines/<x>.py`"
    script = wdir / scripts[0]
    needed = {script: script.name, **required_modules(script, task_kind(cmd, wdir), cannot_change_results)}
    return needed, [Path(dep.fs_path) for dep in stage.deps]


def stage_gaps(stage) -> list[str]:
    """The project modules the stage's script runs that none of its deps covers, with their import chains."""
    needed, deps = stage_modules(stage)
    return [
        f"{path.relative_to(ROOT)} ({why})"
        for path, why in sorted(needed.items())
        if not any(path.is_relative_to(dep) for dep in deps)
    ]


def stage_excess(stage) -> list[str]:
    """The stage's deps under src/ naming code it does not run: a module file, or a task package whole."""
    needed, deps = stage_modules(stage)
    tasks = SRC / "rnnlab" / "tasks"
    unused = [dep for dep in deps if dep.is_file() and dep.is_relative_to(SRC) and dep not in needed]
    folders = [dep for dep in deps if dep.is_dir() and dep.is_relative_to(tasks)]
    return [str(dep.relative_to(ROOT)) for dep in unused + folders if dep.is_dir() or not inert(dep)]


@pytest.fixture(scope="module")
def stages() -> dict[str, list]:
    """{dvc.yaml path: its stages}, as DVC resolves them from the files and the params they read."""
    with Repo(str(ROOT)) as repo:
        found: dict[str, list] = {}
        for stage in repo.index.stages:
            found.setdefault(str(Path(stage.dvcfile.path).relative_to(ROOT)), []).append(stage)
        return found


@pytest.mark.parametrize("pipeline", PIPELINES)
def test_stage_deps_cover_the_modules_their_scripts_import(stages, pipeline):
    assert len(stages[pipeline]) >= 5, stages[pipeline]
    gaps = {stage.addressing: stage_gaps(stage) for stage in stages[pipeline]}
    missing = "\n".join(f"{name}: {', '.join(paths)}" for name, paths in gaps.items() if paths)
    assert not missing, f"{pipeline}: deps to add (module, import chain):\n{missing}"


@pytest.mark.parametrize("pipeline", PIPELINES)
def test_stage_deps_name_no_module_their_scripts_do_not_run(stages, pipeline):
    """An edit to code a stage does not run leaves it fresh: a change to how translations are scored must not
    retrain the five translation models (hours each). So a task package is listed module by module; the shared
    packages a stage uses most of (models, diagnostics, tracking) may stay folders."""
    excess = {stage.addressing: stage_excess(stage) for stage in stages[pipeline]}
    found = "\n".join(f"{name}: {', '.join(paths)}" for name, paths in excess.items() if paths)
    assert not found, f"{pipeline}: deps the stage's script never runs:\n{found}"


def test_the_modules_said_to_change_no_results_exist():
    assert all(module_file(name) for name in NO_RESULTS)
    assert inert(SRC / "rnnlab" / "__init__.py") and not inert(SRC / "rnnlab" / "tasks" / "__init__.py")


def test_imports_are_found_in_functions_relative_and_through_their_packages():
    source = (
        "import os\n"
        "from rnnlab.data.store import SPLITS\n"
        "def f():\n"
        "    from rnnlab import io, tracking\n"
        "    from .vocab import Vocabulary\n"
        "if TYPE_CHECKING:\n"
        "    from rnnlab.tasks.classification.pyfunc import log_text_model\n"
    )
    found = imported_modules(ast.parse(source), "rnnlab.data.encode")
    ours = {"rnnlab", "rnnlab.data", "rnnlab.data.store", "rnnlab.data.vocab", "rnnlab.io", "rnnlab.tracking"}
    assert found == ours


def test_task_members_are_those_used_or_all_when_the_module_goes_elsewhere():
    used = task_members(ast.parse("t = task_module(cfg)\nt.datamodule(cfg)\nx = t.HAS_TEST"))
    assert used == {"datamodule", "HAS_TEST"}
    assert task_members(ast.parse("task_module(cfg).download(cfg)")) == {"download"}
    assert task_members(ast.parse("t = task_module(cfg)\nrun(t)")) is None
    assert task_members(ast.parse("from rnnlab.tasks import task_module")) == set()
    other_scope = "def f():\n    t = task_module(cfg)\n    t.evaluate()\ndef g(t):\n    print(t)\n"
    assert task_members(ast.parse(other_scope)) == {"evaluate"}


def test_the_closure_follows_the_task_members_used_and_skips_modules_that_change_no_results():
    train = ROOT / "pipelines" / "train.py"
    required = required_modules(train, "classification", cannot_change_results)
    names = {str(path.relative_to(SRC / "rnnlab")) for path in required}
    assert {
        "tasks/classification/__init__.py",
        "tasks/classification/sequence_data.py",
        "models/encoder.py",
    } <= names
    assert {"data/store.py", "data/vocab.py", "config.py", "io.py"} <= names
    assert not {"tasks/forecast/__init__.py", "tasks/classification/evaluation.py", "data/sources.py"} & names
    assert not {"__init__.py", "models/__init__.py", "stage.py", "errors.py", "validation.py"} & names
    assert SRC / "rnnlab" / "validation.py" in required_modules(train, "classification")  # reached, skipped
    download = required_modules(ROOT / "pipelines" / "download.py", "forecast", cannot_change_results)
    chain = "download.py -> task_module(cfg): rnnlab.tasks.forecast[download]"
    assert download[SRC / "rnnlab" / "tasks" / "forecast" / "__init__.py"] == chain
    assert not any("models" in path.parts for path in download)
