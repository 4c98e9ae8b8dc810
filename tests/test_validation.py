"""Every config value is checked before a stage starts work: a bad value for every numeric and enum key of
conf/ (generated from the rules, for each task) is refused with one message naming the key and what it
allows; the real stage scripts exit 2 with one `rnnlab: error:` line and write nothing."""

from __future__ import annotations

import copy
import functools
import importlib.util
import math
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from hydra.core.override_parser.overrides_parser import OverridesParser
from omegaconf import OmegaConf

from dvc_repo import project_copy
from rnnlab import cli, stage
from rnnlab.errors import ConfigError
from rnnlab.validation import RULES, leaves, rule_key, rules_for, validate

ROOT = Path(__file__).resolve().parents[1]
TASKS = {
    **{
        path.stem: [] if path.stem == "imdb" else [f"task={path.stem}"]
        for path in (ROOT / "conf" / "task").glob("*.yaml")
    },
    "table": ["data=table", "data.name=reviews"],
}
GROUPS = [
    f"{group}={path.stem}"
    for group in ("experiment", "trainer", "model", "hparams_search")
    for path in sorted((ROOT / "conf" / group).glob("*.yaml"))
]


def composed(overrides: list[str]):
    with initialize_config_dir(str(ROOT / "conf"), version_base="1.3"):
        return compose("config", overrides=overrides)


def written(value) -> str:
    """`value` as a Hydra command-line override writes it."""
    if isinstance(value, list):
        return "[" + ",".join(map(written, value)) + "]"
    if isinstance(value, str):
        return f"'{value}'"
    if value is None or isinstance(value, bool):
        return "null" if value is None else str(value).lower()
    return str(value)


def bad_value_cases() -> list:
    """(task, key, bad value) for every key of each task's composition that a rule covers, each rule's
    refused values once per task kind (a `models.<name>` rule once, for the first cell)."""
    cases, seen = [], set()
    for task, overrides in TASKS.items():
        cfg = composed(overrides)
        rules = rules_for(cfg.task.kind)
        for key, _ in leaves(cfg):
            rule = rules.get(rule_key(key))
            if rule is None or (rule_key(key), rule.allowed) in seen:
                continue
            seen.add((rule_key(key), rule.allowed))
            cases += [
                pytest.param(task, key, bad, rule.allowed, id=f"{task}-{key}={written(bad)}")
                for bad in rule.bad
            ]
    return cases


@pytest.mark.parametrize(
    "overrides",
    [[], *(o for o in TASKS.values() if o), *([g] for g in GROUPS)],
    ids=lambda o: " ".join(o) or "default",
)
def test_every_key_of_conf_has_a_rule_and_the_shipped_configs_pass(overrides):
    cfg = composed(overrides)
    rules = rules_for(cfg.task.kind)
    uncovered = [key for key, _ in leaves(cfg) if rule_key(key) not in rules]
    assert not uncovered, f"conf/ keys without a rule in rnnlab.validation.RULES: {uncovered}"
    validate(cfg)


def test_every_rule_names_a_key_of_conf():
    keys = {rule_key(key) for overrides in TASKS.values() for key, _ in leaves(composed(overrides))}
    assert set(RULES) - keys == {"model_key"}  # the DVC stages add it: +model_key=<cell>


@functools.cache
def task_config(task: str):
    return composed(TASKS[task])


def overridden(task: str, override: str):
    """The task's composition with `override` parsed by Hydra's override parser and applied (as compose
    does, without composing the whole tree again for each of the many cases)."""
    cfg = copy.deepcopy(task_config(task))
    parsed = OverridesParser.create().parse_overrides([override])[0]
    OmegaConf.update(cfg, parsed.key_or_group, parsed.value(), merge=False)
    return cfg


def test_overridden_matches_hydra_compose():
    overrides = ["models.lstm.hidden_size=-1", "eval.length_buckets=[200,100]", "data.source.uri=''"]
    for override in overrides:
        assert overridden("imdb", override) == composed([override])


@pytest.mark.parametrize(("task", "key", "bad", "allowed"), bad_value_cases())
def test_a_bad_value_is_refused_naming_the_key_and_what_it_allows(task, key, bad, allowed):
    cfg = overridden(task, f"{key}={written(bad)}")
    value = dict(leaves(OmegaConf.to_container(cfg)))[key]
    assert value == bad or (isinstance(bad, float) and math.isnan(bad) and math.isnan(value))  # as meant
    with pytest.raises(ConfigError) as refused:
        validate(cfg)
    message = str(refused.value)
    assert message.startswith(f"{key}=") and "is not allowed" in message
    assert allowed in message
    assert "\n" not in message


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (["trainer.max_epochs=-3"], "trainer.max_epochs=-3 is not allowed; allowed: an integer >= 1"),
        (["optim.lr=-1"], "optim.lr=-1 is not allowed; allowed: a number > 0"),
        (["+model_key=lstm", "models.lstm.hidden_size=-1"], "models.lstm.hidden_size=-1 is not allowed"),
        (["optim.scheduler=cosine"], "scheduler='cosine' is not allowed; allowed: one of plateau, onecycle"),
        (["trainer.precision=17"], "precision=17 is not allowed; allowed: one of 64, 32, 16, transformer"),
        (
            ["+model_key=transformer"],
            "model_key='transformer' is not allowed; allowed: one of rnn, lstm, gru",
        ),
        (["task.mode=min"], "task.mode='min' is not allowed; allowed: max (task.monitor='val/acc')"),
        (
            ["task=forecast", "task.monitor=val/acc"],
            "monitor='val/acc' is not allowed; allowed: one of val/loss",
        ),
        (["diagnostics.gradient_flow.distance=200"], "distance=200 is not allowed; allowed: an integer <"),
        (["compare.models=[lstm,transformer]"], "compare.models=['lstm', 'transformer'] is not allowed"),
        (["models.gru.name=lstm"], "models.gru.name='lstm' is not allowed; allowed: 'gru' (its key under"),
        (["task=forecast", "data.split.test_fraction=0.9"], "data.split.test_fraction=0.9 is not allowed"),
        (["task=forecast", "data.columns.target=Price"], "data.columns.target='Price' is not allowed"),
        (
            ["task=forecast", "data.seasonal_period=200"],
            "data.seasonal_period=200 is not allowed; allowed: an",
        ),
        (
            ["trainer=cpu", "trainer.devices=-1"],
            "trainer.devices=-1 is not allowed; allowed: auto or an integer",
        ),
        (
            ["task=charlm", "+model_key=bilstm"],
            "models.bilstm.bidirectional=true is not allowed; allowed: false",
        ),
        (["task=charlm", "model=bilstm"], "model.bidirectional=true is not allowed; allowed: false"),
        (["paths.raw_dir=${data.nme}"], "paths.raw_dir cannot be resolved: Interpolation key 'data.nme'"),
        (
            ["data.name=''"],
            "data.name='' is not allowed; allowed: lower-case letters, digits, '-' and '_', starting with a "
            "letter or digit (at most 64) (also not allowed: logger.experiment_name)",
        ),
        (["trainer.max_epochs=2.5"], "trainer.max_epochs=2.5 is not allowed; allowed: an integer >= 1"),
        (["data.loader.bucket=1"], "data.loader.bucket=1 is not allowed; allowed: one of true, false"),
        (
            ["optim.lr=-1", "model.dropout=1.0"],
            "optim.lr=-1 is not allowed; allowed: a number > 0 (also not allowed: model.dropout)",
        ),
    ],
)
def test_values_allowed_alone_but_not_together_and_other_refusals(overrides, message):
    with pytest.raises(ConfigError) as refused:
        validate(composed(overrides))
    assert message in str(refused.value)


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
    monkeypatch.setattr(stage, "check_before_run", lambda *args: None)
    monkeypatch.setenv("HYDRA_MAIN_MODULE", "__main__")  # conf/ is found beside the script, as when run
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("RNNLAB_ROOT", str(tmp_path))
    hydra_args = [
        f"hydra.run.dir={tmp_path / 'run'}",
        "hydra/job_logging=disabled",
        "hydra/hydra_logging=disabled",
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
