"""`compare.sweep=<parent run id>`: a sweep's runs by model, mean ± sample std over the seeds, checked against
the children's metrics read back from MLflow; the sweeps it refuses, each run named; the DVC stage's
compare unchanged."""

from __future__ import annotations

import itertools
import json
import statistics
import uuid
from pathlib import Path

import mlflow
import pandas as pd
import pytest
from mlflow.entities import Metric, Param
from test_compare import run_compare, write_reports
from test_sweep import split_parent, sweep

from rnnlab import ranking
from rnnlab.errors import ConfigError, MissingInputError
from rnnlab.seed_comparison import compare
from rnnlab.sweep_runs import read_sweep
from rnnlab.tasks.classification import COMPARE
from synthetic import run_folders, run_stage, tiny_overrides

SHOWN = {
    "val_acc": "val/acc_best",
    "test_acc": "test/acc",
    "test_f1": "test/f1",
    "test_loss": "test/loss",
    "train_seconds": "train_seconds",
}
NOT_PERCENT = ("test_loss", "train_seconds")


def test_a_sweep_of_two_models_by_two_seeds_shows_mean_and_std_of_its_runs(tmp_path, project_root, data):
    """The README's parallel seed sweep (joblib launcher, two one-thread jobs at once): one parent, its
    children compared by model."""
    args = ("model=rnn,gru", "seed=1,2", "trainer.max_epochs=1", "logger.system_metrics=false")
    parallel = ("hydra/launcher=joblib", "hydra.launcher.n_jobs=2", "train.threads=1")
    client, runs, done = sweep(tmp_path, project_root, data, *args, *parallel)
    parent, children = split_parent(runs)
    spans = sorted((run.info.start_time, run.info.end_time) for run in children)
    assert any(later[0] < earlier[1] for earlier, later in itertools.pairwise(spans))  # two ran at once
    assert f"[sweep] parent={parent.info.run_name} id={parent.info.run_id} children=4" in done.stdout
    overrides = [f"compare.sweep={parent.info.run_id}", f"paths.runs_dir={tmp_path / 'runs'}"]
    _, experiment = run_compare(project_root, tmp_path, overrides)
    folder = tmp_path / "runs" / "sweeps" / parent.info.run_name
    table = pd.read_csv(folder / "compare.csv", index_col="model")
    markdown = (folder / "compare.md").read_text(encoding="utf-8")
    assert list(table.index) == ["rnn", "gru"]  # the order the sweep ran them
    means = {}
    for model in table.index:
        logged = [
            client.get_run(run.info.run_id).data for run in children if run.data.params["model/name"] == model
        ]
        assert table.at[model, "seeds"] == "1,2" and table.at[model, "params_mean"] == int(
            logged[0].params["param_count"]
        )
        assert table.at[model, "epochs_mean"] == 1 and table.at[model, "params_std"] == 0
        for column, metric in SHOWN.items():
            values = [data.metrics[metric] for data in logged]
            mean, std = statistics.mean(values), statistics.stdev(values)
            assert table.at[model, f"{column}_mean"] == pytest.approx(mean, abs=1e-12)
            assert table.at[model, f"{column}_std"] == pytest.approx(std, abs=1e-12)
            assert table.at[model, f"{column}_n"] == 2
            if column not in NOT_PERCENT:
                assert f" {100 * mean:.2f} ± {100 * std:.2f} (n=2) |" in markdown
        means[model] = statistics.mean(data.metrics["val/acc_best"] for data in logged)
    best = ranking.best(means, higher_is_better=True)
    assert markdown.splitlines()[-1].startswith(f"{best} wins on the mean val_acc: {100 * means[best]:.2f}%")
    assert "Not recorded by a training run" not in markdown.splitlines()[0]
    (compared,) = client.search_runs([experiment], "tags.comparison = 'true'")
    assert compared.data.tags["best_model"] == best
    assert compared.data.tags["compared_sweep"] == parent.info.run_id
    assert (
        f"#/experiments/{experiment}/runs/{parent.info.run_id})" in compared.data.tags["mlflow.note.content"]
    )


def test_evaluated_runs_add_their_accuracy_by_length_to_the_sweep(tmp_path, project_root, data, capsys):
    """`python pipelines/evaluate.py run_dir=<folder>` on the runs of a sweep: the scores go to the run's
    folder and MLflow run, never the pipeline's reports; compare.sweep averages them once every run has
    them."""
    client, runs, _ = sweep(tmp_path, project_root, data, "model=gru", "seed=1,2", "trainer.max_epochs=1")
    parent, _ = split_parent(runs)
    first, second = run_folders(tmp_path, "gru")
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    args = [*tiny_overrides(tmp_path, *data, uri), "model=gru", "eval.length_buckets=[5,10]"]
    run_stage(project_root, "evaluate", [*args, f"run_dir={first}"])
    overrides = [f"compare.sweep={parent.info.run_id}", f"paths.runs_dir={tmp_path / 'runs'}"]
    with pytest.raises(SystemExit):
        run_compare(project_root, tmp_path, overrides)
    unevaluated = client.get_run(json.loads((second / "report.json").read_text())["run_id"]).info.run_name
    assert (
        f"others record: {unevaluated} (acc_len <=5, acc_len 6-10, acc_len >10) (scores by length: evaluate"
        in capsys.readouterr().err
    )
    run_stage(project_root, "evaluate", [*args, f"run_dir={second}"])
    run_compare(project_root, tmp_path, overrides)
    assert not (tmp_path / "reports" / "eval").exists()  # the pipeline's evaluation untouched
    logged = []
    for folder in (first, second):
        metrics = json.loads((folder / "eval" / "metrics.json").read_text())
        run = client.get_run(json.loads((folder / "report.json").read_text())["run_id"]).data.metrics
        assert run["test/acc_len_le5"] == pytest.approx(metrics["length_buckets"]["<=5"]["acc"])
        assert metrics["acc"] == pytest.approx(run["test/acc"], abs=1e-6)  # training's test, same checkpoint
        logged.append(run)
    folder = tmp_path / "runs" / "sweeps" / parent.info.run_name
    table = pd.read_csv(folder / "compare.csv", index_col="model")
    for bucket, key in (("<=5", "le5"), ("6-10", "6_10"), (">10", "gt10")):
        values = [run[f"test/acc_len_{key}"] for run in logged]
        assert table.at["gru", f"acc_len {bucket}_mean"] == pytest.approx(statistics.mean(values))
        assert table.at["gru", f"acc_len {bucket}_std"] == pytest.approx(statistics.stdev(values))
    header = (folder / "compare.md").read_text(encoding="utf-8").splitlines()[0]
    assert "In %: val_acc, test_acc, test_f1, test_auroc, acc_len <=5, acc_len 6-10, acc_len >10." in header


def test_scores_by_length_are_columns_shortest_bucket_first(store):
    by_length = {"test/acc_len_gt400": 0.7, "test/acc_len_le100": 0.9, "test/acc_len_101_200": 0.8}
    runs = [{"model": "gru", "seed": seed, "val": 0.8, "metrics": by_length} for seed in (1, 2)]
    client, parent = fake_sweep(store, runs)
    result = compare(read_sweep(client, parent, "classification"), COMPARE)
    shown = ["acc_len <=100", "acc_len 101-200", "acc_len >400"]
    assert [c for c in result.table.columns if c.startswith("acc_len")] == [
        f"{column}_{stat}" for column in shown for stat in ("mean", "std", "n")
    ]
    head = result.markdown.splitlines()[2]
    assert [head.index(column) for column in shown] == sorted(head.index(column) for column in shown)
    assert " 70.00 ± 0.00 (n=2) |" in result.markdown  # in % as the test accuracy


@pytest.fixture(scope="module")
def store(tmp_path_factory) -> Path:
    """The folder of one MLflow store for the hand-made sweeps (making an SQLite store takes seconds)."""
    folder = tmp_path_factory.mktemp("store")
    mlflow.MlflowClient(tracking_uri=f"sqlite:///{folder / 'mlflow.db'}").search_experiments()
    return folder


def fake_sweep(
    store: Path, runs: list[dict], ended: str | None = "FINISHED"
) -> tuple[mlflow.MlflowClient, str]:
    """A sweep's parent run and children, in an experiment of their own, as pipelines/train.py -m logs them
    (the params and metrics the comparison reads); each of `runs` gives model, seed, val (val/acc_best) and
    optionally status, params, more metrics, a metric to leave out (`without`); the parent `ended` so (None:
    running)."""
    client = mlflow.MlflowClient(tracking_uri=f"sqlite:///{store / 'mlflow.db'}")
    experiment = client.create_experiment(f"imdb-{uuid.uuid4().hex}", (store / "mlartifacts").as_uri())
    tags = {"rnnlab.source": "sweep"}
    parent = client.create_run(experiment, run_name="imdb-sweep-000000", tags={**tags, "sweep": "parent"})
    for number, run in enumerate(runs):
        child = client.create_run(
            experiment,
            run_name=f"imdb-{run['model']}-{number:06d}",
            tags={**tags, "mlflow.parentRunId": parent.info.run_id},
            start_time=1_000 + number,
        ).info.run_id
        params = {
            "model/name": run["model"],
            "seed": str(run["seed"]),
            "optim/lr": "0.002",
            "param_count": "1000",
            "task/name": "imdb",
            "task/kind": "classification",
            "task/monitor": "val/acc",
            "task/mode": "max",
            **run.get("params", {}),
        }
        best = {"val/acc_best": run["val"], "test/acc": run["val"] - 0.01, "test/f1": 0.5, "test/loss": 0.4}
        best |= {"test/auroc": 0.6, "train/seq_per_s": 100.0 + number, **run.get("metrics", {})}
        metrics = [Metric(name, value, 0, 2) for name, value in best.items() if name != run.get("without")]
        metrics += [Metric("val/acc", run["val"], 0, step) for step in (1, 2)]
        client.log_batch(child, metrics, [Param(key, value) for key, value in params.items()])
        client.set_terminated(child, run.get("status", "FINISHED"))
    if ended:
        client.set_terminated(parent.info.run_id, ended)
    return client, parent.info.run_id


def test_the_mean_ranks_a_single_seed_shows_n_1_and_no_spread(store):
    lstm = [0.90, 0.80, 0.82]  # the best single run, not the best mean
    runs = [{"model": "lstm", "seed": seed, "val": val} for seed, val in zip((1, 2, 3), lstm, strict=True)]
    client, parent = fake_sweep(store, [*runs, {"model": "gru", "seed": 1, "val": 0.85}])
    result = compare(read_sweep(client, parent, "classification"), COMPARE)
    assert result.rank_by == "val_acc" and result.best == "gru"
    row = result.table.loc["lstm"]
    assert row["val_acc_mean"] == pytest.approx(statistics.mean(lstm))
    assert row["val_acc_std"] == pytest.approx(statistics.stdev(lstm)) and row["val_acc_n"] == 3
    assert row["seeds"] == "1,2,3" and row["epochs_mean"] == 2 and row["train_seq_per_s_mean"] == 101
    gru = [line for line in result.markdown.splitlines() if line.startswith("|     gru |")][0]
    assert " 85.00 (n=1) |" in gru and "±" not in gru
    assert " 84.00 ± 5.29 (n=3) |" in result.markdown
    assert result.verdict == (
        "gru wins on the mean val_acc: 85.00%, n=1, 1.00 points ahead of lstm (84.00% ± 5.29, n=3); "
        "the gap is within one standard deviation (5.29)."
    )


def test_a_failed_child_is_refused_by_name(store, tmp_path, project_root, capsys):
    runs = [
        {"model": "gru", "seed": 1, "val": 0.8},
        {"model": "gru", "seed": 2, "val": 0.7, "status": "FAILED"},
    ]
    _, parent = fake_sweep(store, runs)
    with pytest.raises(SystemExit):
        run_compare(project_root, store, [f"compare.sweep={parent}", f"paths.runs_dir={tmp_path / 'runs'}"])
    error = capsys.readouterr().err
    assert "sweep imdb-sweep-000000 has children that did not finish: imdb-gru-000001 (FAILED)" in error
    assert not (tmp_path / "runs").exists()


@pytest.mark.parametrize(
    ("second", "error", "message"),
    [
        (
            {"without": "val/acc_best"},
            MissingInputError,
            "lack the monitored metric val/acc_best: imdb-gru-000001",
        ),
        ({"without": "test/f1"}, MissingInputError, r"others record: imdb-gru-000001 \(test_f1\)"),
        (
            {"params": {"optim/lr": "0.1"}},
            ConfigError,
            r"gru differ in more than the seed \(optim/lr: 0.002, 0.1\)",
        ),
        ({"seed": 1}, ConfigError, "gru ran seed 1 more than once"),
        (
            {"params": {"task/monitor": "val/loss"}},
            ConfigError,
            r"their task \(task/monitor: val/acc, val/loss\)",
        ),
    ],
)
def test_runs_that_cannot_be_averaged_are_refused_by_name(store, second, error, message):
    client, parent = fake_sweep(
        store, [{"model": "gru", "seed": 1, "val": 0.8}, {"model": "gru", "seed": 2, "val": 0.7, **second}]
    )
    with pytest.raises(error, match=message):
        compare(read_sweep(client, parent, "classification"), COMPARE)


def test_a_run_not_a_sweep_parent_of_another_task_or_a_sweep_not_finished_is_refused(store):
    client, parent = fake_sweep(store, [{"model": "gru", "seed": 1, "val": 0.8}])
    (child,) = client.search_runs(
        [client.get_run(parent).info.experiment_id], f"tags.mlflow.parentRunId = '{parent}'"
    )
    with pytest.raises(ConfigError, match="not a sweep's parent run"):
        read_sweep(client, child.info.run_id, "classification")
    with pytest.raises(ConfigError, match="is not a run in the tracking store"):
        read_sweep(client, "0" * 32, "classification")
    with pytest.raises(ConfigError, match="trained task imdb .kind classification., not a forecast task"):
        read_sweep(client, parent, "forecast")
    client, parent = fake_sweep(store, [{"model": "gru", "seed": 1, "val": 0.8}], ended=None)
    with pytest.raises(
        MissingInputError, match=r"imdb-sweep-000000 is still RUNNING \(1 child runs so far\)"
    ):
        read_sweep(client, parent, "classification")
    client, parent = fake_sweep(store, [{"model": "gru", "seed": 1, "val": 0.8}], ended="FAILED")
    with pytest.raises(MissingInputError, match="imdb-sweep-000000 ended FAILED"):
        read_sweep(client, parent, "classification")


def test_without_a_sweep_the_dvc_compare_stage_writes_what_it_wrote_before(store, project_root):
    """The files of the compare stage before compare.sweep existed (main's code on these reports; the
    reports and the files in the shared store's folder)."""
    write_reports(store, "rnn", 1_000, 0.80, [0.9, 0.8, 0.6])
    write_reports(store, "lstm", 4_000, 0.88, [0.9, 0.88, None])
    run_compare(project_root, store, ["~baseline"])
    assert (store / "compare.md").read_text(encoding="utf-8") == DVC_MARKDOWN
    assert (store / "compare.csv").read_text(encoding="utf-8") == DVC_CSV


DVC_MARKDOWN = """\
Accuracy, F1 and AUROC in %; `acc_len` columns: test accuracy by review length in tokens.

|   model |   params |   epochs |   train_seconds |   train_seq_per_s |   val_acc |   test_acc |   test_f1 |   test_auroc |   test_loss |   acc_len <=100 |   acc_len 101-200 |   acc_len >200 |
|--------:|---------:|---------:|----------------:|------------------:|----------:|-----------:|----------:|-------------:|------------:|----------------:|------------------:|---------------:|
|     rnn |    1,000 |        3 |            12.5 |               321 |     81.00 |      80.00 |     75.00 |        90.00 |      0.3500 |           90.00 |             80.00 |          60.00 |
|    lstm |    4,000 |        3 |            12.5 |               321 |     89.00 |      88.00 |     75.00 |        90.00 |      0.3500 |           90.00 |             88.00 |              – |

lstm wins on val_acc: 89.00%, 8.00 points ahead of rnn (81.00%).
"""  # noqa: E501
DVC_CSV = """\
model,run_id,params,epochs,train_seconds,train_seq_per_s,val_acc,test_acc,test_f1,test_auroc,test_loss,acc_len <=100,acc_len 101-200,acc_len >200
rnn,id-rnn,1000,3,12.5,321.0,0.81,0.8,0.75,0.9,0.35,0.9,0.8,0.6
lstm,id-lstm,4000,3,12.5,321.0,0.89,0.88,0.75,0.9,0.35,0.9,0.88,
"""  # noqa: E501
