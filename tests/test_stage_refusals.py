"""Each stage script refuses a bad configuration value before it does anything: one `rnnlab: error:` line,
exit status 2, nothing written (in process through the real entry points, and as DVC and a user run them)."""

from __future__ import annotations

import importlib.util
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from hydra.core.global_hydra import GlobalHydra

from dvc_repo import project_copy
from rnnlab import cli, stage

ROOT = Path(__file__).resolve().parents[1]


def load_pipeline(name: str):
    spec = importlib.util.spec_from_file_location(f"pipeline_{name}", ROOT / "pipelines" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize(
    ("stage", "args", "message"),
    [
        ("download", ["data.download.retries=-1"], "data.download.retries=-1 is not allowed"),
        (
            "prepare",
            ["data.vocab.max_size=2"],
            "data.vocab.max_size=2 is not allowed; allowed: an integer >= 3",
        ),
        (
            "encode",
            ["data.encode.padding=middle"],
            "data.encode.padding='middle' is not allowed; allowed: one",
        ),
        ("train", ["model.hidden_size=-1"], "model.hidden_size=-1 is not allowed; allowed: an integer >= 1"),
        ("train", ["trainer.precision=17"], "trainer.precision=17 is not allowed; allowed: one of 64"),
        (  # Lightning's registries are checked where pretrain_lm trains: a cell with init_from lm
            "pretrain_lm",
            ["model.init_from=lm", "trainer.precision=17"],
            "trainer.precision=17 is not allowed; allowed: one of 64",
        ),
        (
            "train",
            ["-m", "model=rnn,gru", "trainer.gradient_clip_val=-1"],
            "trainer.gradient_clip_val=-1 is not",
        ),
        ("evaluate", ["task=forecast", "eval.plot_windows=0"], "eval.plot_windows=0 is not allowed"),
        (
            "export",
            ["model.cell=transformer"],
            "model.cell='transformer' is not allowed; allowed: one of rnn",
        ),
        ("register", ["registry.model_name=''"], "registry.model_name='' is not allowed"),
        ("compare", ["task=charlm", "compare.models=[]"], "compare.models=[] is not allowed"),
        (
            "baseline",
            ["baseline.C=[1,0]"],
            "baseline.C=[1, 0] is not allowed; allowed: a non-empty list, each",
        ),
    ],
)
def test_every_stage_checks_its_config_before_hydra_starts(
    tmp_path, monkeypatch, capsys, stage, args, message
):
    """In process, through each stage's real entry point: refused before Hydra makes its run folder."""
    main = load_pipeline(stage).main
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("RNNLAB_ROOT", str(tmp_path))
    monkeypatch.setattr(sys, "argv", [f"{stage}.py", *args])
    with pytest.raises(SystemExit) as exited:
        main()
    assert exited.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(f"rnnlab: error: {message}"), err
    assert not list(tmp_path.iterdir())


def snapshot(folder: Path) -> set[Path]:
    return {path.relative_to(folder) for path in folder.rglob("*") if ".git" not in path.parts}


def dvc_train_command(work: Path, cell: str) -> list[str]:
    """The train@<cell> command of dvc.yaml, as DVC runs it."""
    spec = yaml.safe_load((work / "dvc.yaml").read_text())
    cmd = spec["stages"]["train"]["do"]["cmd"].replace("${item}", cell)
    return cmd.replace("${stage_args}", spec["vars"][0]["stage_args"]).split()


@pytest.fixture(scope="module")
def project(tmp_path_factory) -> tuple[Path, dict]:
    work = tmp_path_factory.mktemp("project")
    return work, project_copy(ROOT, work)


def run_stage(work: Path, env: dict, cmd: list[str]) -> tuple[str, str]:
    """(the one `rnnlab: error:` line, the whole stderr) of a stage that must exit with status 2."""
    done = subprocess.run(cmd, cwd=work, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 2, done.stderr
    errors = [line for line in done.stderr.splitlines() if line.startswith("rnnlab: error:")]
    assert len(errors) == 1 and "Traceback" not in done.stderr, done.stderr
    return errors[0], done.stderr


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["trainer.max_epochs=-3"], "trainer.max_epochs=-3 is not allowed; allowed: an integer >= 1"),
        (["optim.lr=-1"], "optim.lr=-1 is not allowed; allowed: a number > 0"),
        (
            ["DVC", "models.lstm.hidden_size=-1"],
            "models.lstm.hidden_size=-1 is not allowed; allowed: an integer",
        ),
    ],
)
def test_a_stage_refuses_a_bad_value_with_one_line_and_writes_nothing(project, args, message):
    work, env = project
    before = snapshot(work)
    dvc = args[0] == "DVC"
    cmd = [*dvc_train_command(work, "lstm"), *args[1:]] if dvc else ["python", "pipelines/train.py", *args]
    error, stderr = run_stage(work, env, cmd)
    assert error == f"rnnlab: error: {message}" if not dvc else message in error
    assert stderr.strip() == error
    assert snapshot(work) == before and not (work / "mlflow.db").exists()


def test_a_job_hydra_runs_is_checked_too(tmp_path, monkeypatch, capsys):
    """What the check before Hydra leaves to Hydra (a value swept in a multirun, a config it cannot compose)
    is refused when the job starts, before the stage does anything."""
    main = load_pipeline("download").main
    monkeypatch.setattr(stage, "check_before_run", lambda *args, **kwargs: None)
    monkeypatch.setenv("HYDRA_MAIN_MODULE", "__main__")  # conf/ is found beside the script, as when run
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("RNNLAB_ROOT", str(tmp_path))
    hydra_args = [
        f"hydra.run.dir={tmp_path / 'run'}",
        "hydra/job_logging=none",  # not "disabled": that disables every logger this process already made
        "hydra/hydra_logging=none",
    ]
    monkeypatch.setattr(sys, "argv", ["download.py", "data.download.retries=-1", *hydra_args])
    try:
        with pytest.raises(SystemExit) as exited:
            main()
    finally:
        GlobalHydra.instance().clear()
    assert exited.value.code == 2
    error = "rnnlab: error: data.download.retries=-1 is not allowed; allowed: an integer >= 0"
    assert capsys.readouterr().err.strip().splitlines() == [error]
    assert [path.name for path in tmp_path.iterdir()] == ["run"]  # Hydra's run folder only


def test_sync_params_refuses_a_bad_override_and_rewrites_nothing(tmp_path, monkeypatch, capsys):
    shutil.copytree(ROOT / "conf", tmp_path / "conf")
    for path in [ROOT / "params.yaml", *(ROOT / "pipelines").glob("*/params.yaml")]:
        (tmp_path / path.relative_to(ROOT)).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(path, tmp_path / path.relative_to(ROOT))
    before = snapshot(tmp_path), {path: path.read_bytes() for path in tmp_path.glob("**/params.yaml")}
    monkeypatch.setenv("RNNLAB_ROOT", str(tmp_path))
    with pytest.raises(SystemExit) as exited:
        cli.main(["sync-params", "--task", "forecast", "data.window.horizon=0"])
    assert exited.value.code == 2
    error = "rnnlab: error: data.window.horizon=0 is not allowed; allowed: an integer >= 1"
    assert capsys.readouterr().err.strip().splitlines() == [error]
    assert (
        snapshot(tmp_path),
        {path: path.read_bytes() for path in tmp_path.glob("**/params.yaml")},
    ) == before
