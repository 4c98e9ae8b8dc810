"""One rule for "the best model" (rnnlab.ranking) wherever a best model is chosen, ties included; the epoch
clock of the training logger; the params and datasets a training run logs; an experiment two processes
create at once."""

from __future__ import annotations

import importlib.util
import math

import mlflow
import pytest
from mlflow.exceptions import MlflowException
from omegaconf import OmegaConf

from rnnlab import ranking
from rnnlab.comparison import best_model, verdict
from rnnlab.errors import RnnlabError
from rnnlab.io import write_json
from rnnlab.run_logger import run_params
from rnnlab.tasks import Comparison
from rnnlab.tasks.classification import COMPARE
from rnnlab.tracking import ensure_experiment
from rnnlab.tracking.datasets import log_datasets

TIED = {"rnn": 0.80, "lstm": 0.82, "gru": 0.82, "bilstm": 0.75}  # lstm and gru tie: gru sorts first


def test_best_takes_the_highest_or_lowest_and_breaks_ties_by_name():
    assert ranking.best(TIED, higher_is_better=True) == "gru"
    assert ranking.best(dict(reversed(TIED.items())), higher_is_better=True) == "gru"  # order-independent
    assert ranking.best(TIED, higher_is_better=False) == "bilstm"
    assert ranking.best({"b": 0.1, "a": 0.1}, higher_is_better=False) == "a"
    assert ranking.best({"rnn": math.nan, "lstm": None, "gru": 0.5}, higher_is_better=True) == "gru"
    with pytest.raises(RnnlabError, match="no candidate has a val_acc"):
        ranking.best({"rnn": math.nan}, higher_is_better=True, what="val_acc")


def test_register_and_compare_agree_on_a_tie(tmp_path, project_root):
    import pandas as pd

    table = pd.DataFrame({"val_acc": TIED, "run_id": {m: f"id-{m}" for m in TIED}})
    assert best_model(table, COMPARE) == "gru"
    assert verdict(table, "gru", COMPARE) == "gru wins on val_acc: 82.00%, 0.00 points ahead of lstm (82.00%)"
    for model, score in TIED.items():
        write_json(
            tmp_path / f"{model}.json", {"model": model, "run_id": f"id-{model}", "val_acc_best": score}
        )
    spec = importlib.util.spec_from_file_location(
        "register_stage", project_root / "pipelines" / "register.py"
    )
    stage = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(stage)
    assert stage.best_report(tmp_path, COMPARE)["model"] == "gru"


def test_verdict_names_the_margin_over_the_runner_up():
    import pandas as pd

    table = pd.DataFrame({"val_acc": {"rnn": 0.70, "lstm": 0.81, "gru": 0.79}})
    assert (
        verdict(table, "lstm", COMPARE) == "lstm wins on val_acc: 81.00%, 2.00 points ahead of gru (79.00%)"
    )
    losses = Comparison({"val_loss": ("train", "val_loss_best")}, "val_loss", higher_is_better=False)
    table = pd.DataFrame({"val_loss": {"rnn": 0.52, "gru": 0.5}})
    assert verdict(table, "gru", losses) == "gru wins on val_loss: 0.5000, 0.0200 ahead of rnn (0.5200)"


def test_sweep_parent_breaks_a_tie_like_the_others(tmp_path):
    from rnnlab.hydra_callbacks import MlflowSweepParent

    client = mlflow.MlflowClient(tracking_uri=f"sqlite:///{tmp_path / 'mlflow.db'}")
    experiment = client.create_experiment("imdb", (tmp_path / "mlartifacts").as_uri())
    parent = client.create_run(experiment, run_name="imdb-sweep").info.run_id
    for name, acc in TIED.items():
        child = client.create_run(experiment, run_name=name, tags={"mlflow.parentRunId": parent}).info.run_id
        client.log_metric(child, "val/acc_best", acc)
    callback = MlflowSweepParent()
    callback.client, callback.parent_id = client, parent
    callback.on_multirun_end(config=None)
    assert client.get_run(parent).data.tags["best_child_run"] == "gru"


def test_run_params_hold_the_trained_cell_only():
    cfg = OmegaConf.create(
        {
            "model": {"name": "lstm", "cell": "lstm", "hidden_size": 64},
            "models": {"gru": {"name": "gru", "cell": "gru", "hidden_size": 24}},
            "compare": {"models": ["gru"]},
            "registry": {"model_name": None},
            "data": {"name": "imdb", "source": {"uri": "https://example.org/a.tar.gz"}},
            "model_key": "gru",
        }
    )
    params = run_params(cfg, dict(cfg.models.gru), "/mirror/a.tar.gz")
    assert params["model"] == {"name": "gru", "cell": "gru", "hidden_size": 24}
    assert not {"models", "compare", "registry"} & set(params)
    assert params["data"]["source"]["uri"] == "/mirror/a.tar.gz" and params["model_key"] == "gru"


class RacingClient:
    """An MlflowClient stand-in whose first `log_inputs` calls fail as a store does when another run inserted
    the same dataset at the same moment."""

    def __init__(self, failures: int, message: str) -> None:
        self.failures, self.message, self.logged = failures, message, []

    def log_inputs(self, run_id: str, datasets: list) -> None:
        if self.failures:
            self.failures -= 1
            raise MlflowException(self.message)
        self.logged.append((run_id, [d.dataset.name for d in datasets]))


def test_datasets_logged_at_once_by_two_runs_do_not_fail_the_second():
    duplicate = 'BAD_REQUEST: (psycopg2.errors.UniqueViolation) duplicate key value violates "dataset_pk"'
    client = RacingClient(failures=2, message=duplicate)
    log_datasets(client, "r1", "imdb", "abc", "/data/x.tar.gz", {"train": {"rows": 2}, "test": {"rows": 1}})
    assert client.logged == [("r1", ["imdb-train", "imdb-test"])]
    other = RacingClient(failures=1, message="RESOURCE_DOES_NOT_EXIST: no run r1")
    with pytest.raises(MlflowException, match="no run r1"):  # any other error is not retried
        log_datasets(other, "r1", "imdb", "abc", None, {"train": {"rows": 2}})
    assert other.logged == []


def test_an_experiment_another_process_has_just_created_is_used(tmp_path, monkeypatch):
    """Two workers starting at once may both miss the experiment; the second one's create fails (seen once
    in twelve synchronised starts on SQLite) and it takes the first one's."""
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    made = mlflow.MlflowClient(uri).create_experiment("imdb", (tmp_path / "mlartifacts").as_uri())
    lookup, calls = mlflow.MlflowClient.get_experiment_by_name, []

    def looked_up_before_the_other_made_it(self, name):
        calls.append(name)
        return None if len(calls) == 1 else lookup(self, name)

    monkeypatch.setattr(mlflow.MlflowClient, "get_experiment_by_name", looked_up_before_the_other_made_it)
    assert ensure_experiment("imdb", uri, tmp_path) == made and calls == ["imdb", "imdb"]
    with pytest.raises(MlflowException):  # a create that fails for another reason still fails
        ensure_experiment("", uri, tmp_path)
