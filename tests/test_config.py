"""The Hydra tree composes, params.yaml stays its composition, and bad values are named."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf

from rnnlab.params import compose_params, params_path, tasks


def compose_cfg(project_root, overrides=()):
    with initialize_config_dir(str(project_root / "conf"), version_base="1.3"):
        return compose("config", overrides=list(overrides))


def test_params_yaml_is_the_composition_of_conf(project_root):
    committed = (project_root / "params.yaml").read_text(encoding="utf-8")
    assert committed == compose_params(project_root), (
        "params.yaml drifted from conf/: run `rnnlab sync-params`"
    )


@pytest.mark.parametrize("task", ["imdb", "forecast", "charlm"])
def test_each_task_pipeline_reads_its_own_composition(project_root, task):
    assert tasks(project_root)[0] == "imdb" and task in tasks(project_root)
    path = params_path(project_root, task)
    expected = "params.yaml" if task == "imdb" else f"pipelines/{task}/params.yaml"
    assert path == project_root / expected
    assert path.read_text(encoding="utf-8") == compose_params(project_root, [f"task={task}"]), (
        f"{path} drifted from conf/: run `rnnlab sync-params`"
    )
    assert (path.parent / "dvc.yaml").is_file()


def test_tasks_pick_their_data_and_keep_their_outputs_apart(project_root):
    imdb, forecast, charlm = (
        compose_cfg(project_root, [f"task={task}"]) for task in ("imdb", "forecast", "charlm")
    )
    assert (imdb.data.name, forecast.data.name, charlm.data.name) == ("imdb", "elecdemand", "tinyshakespeare")
    assert len({c.paths.reports_dir for c in (imdb, forecast, charlm)}) == 3
    assert len({c.paths.models_dir for c in (imdb, forecast, charlm)}) == 3
    assert (imdb.task.monitor, imdb.task.mode) == ("val/acc", "max")
    assert (forecast.task.monitor, forecast.task.mode) == ("val/loss", "min")
    assert "bilstm" not in charlm.compare.models and "bilstm" in forecast.compare.models
    assert forecast.models.gru.pooling == "last" and charlm.logger.experiment_name == "tinyshakespeare"


def test_required_groups_compose(project_root):
    cfg = compose_cfg(project_root)
    for group in ("data", "model", "trainer", "logger", "paths"):
        assert group in cfg, group
    assert set(cfg.models) == {"rnn", "lstm", "gru", "bilstm"}
    assert cfg.models.bilstm.bidirectional and cfg.models.bilstm.cell == "lstm"


def test_model_override_and_experiment_preset(project_root):
    cfg = compose_cfg(project_root, ["model=gru", "experiment=smoke"])
    assert cfg.model.cell == "gru"
    assert cfg.data.encode.max_len < 256


def test_dvc_style_override_reaches_params(project_root):
    overrides = ["data.encode.max_len=100", "data=table", "data.source.uri=x.csv", "data.name=reviews"]
    params = OmegaConf.create(compose_params(project_root, overrides))
    assert params.data.encode.max_len == 100
    assert params.data.source.kind == "table"
    assert params.paths.raw_dir == "data/raw/reviews" and params.paths.reports_dir == "reports/reviews"
    assert params.logger.experiment_name == "reviews"


def test_unknown_key_is_refused_by_name(project_root):
    with pytest.raises(Exception, match="pading"):
        compose_cfg(project_root, ["data.encode.pading=pre"])


def test_model_config_follows_model_key_or_the_model_group(project_root):
    from rnnlab.config import model_config
    from rnnlab.errors import ConfigError

    assert model_config(compose_cfg(project_root, ["model=gru"]))["name"] == "gru"
    dvc_style = compose_cfg(project_root, ["+model_key=bilstm", "models.bilstm.hidden_size=7"])
    assert model_config(dvc_style)["name"] == "bilstm" and model_config(dvc_style)["hidden_size"] == 7
    with pytest.raises(ConfigError, match=r"model_key='transformer' is not allowed; allowed: one of rnn"):
        model_config(compose_cfg(project_root, ["+model_key=transformer"]))


def test_slurm_launcher_config_composes(project_root, tmp_path):
    """`hydra/launcher=slurm` (conf/hydra/launcher/slurm.yaml; README "Team set-up") is submitit's SLURM
    launcher with its resources; a mistyped key in it fails (the plugin's config is a structured one)."""
    pytest.importorskip("hydra_plugins.hydra_submitit_launcher", reason="pip install -e '.[team]'")

    def launcher(conf: Path, *overrides: str):
        with initialize_config_dir(str(conf), version_base="1.3"):
            cfg = compose("config", ["hydra/launcher=slurm", *overrides], return_hydra_config=True)
        return cfg.hydra.launcher

    slurm = launcher(project_root / "conf", "hydra.launcher.partition=gpu")
    assert slurm._target_ == "hydra_plugins.hydra_submitit_launcher.submitit_launcher.SlurmLauncher"
    assert (slurm.partition, slurm.gpus_per_node, slurm.tasks_per_node) == ("gpu", 1, 1)
    assert slurm.submitit_folder.endswith("/.submitit/%j")
    shutil.copytree(project_root / "conf", tmp_path / "conf")
    mistyped = tmp_path / "conf" / "hydra" / "launcher" / "slurm.yaml"
    mistyped.write_text(mistyped.read_text().replace("\ngpus_per_node:", "\ngpus_per_nodes:"))
    with pytest.raises(Exception, match="Key 'gpus_per_nodes' not in 'SlurmQueueConf'"):
        launcher(tmp_path / "conf")
