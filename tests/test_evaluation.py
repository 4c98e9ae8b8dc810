"""Evaluation: metrics on a hand-computed case, length buckets, and `pipelines/evaluate.py` end to end."""

from __future__ import annotations

import importlib.util
import json
import math
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from hydra import compose, initialize_config_dir

from rnnlab.buckets import assign_buckets, bucket_names, check_bucket_edges, metric_key
from rnnlab.errors import ConfigError
from rnnlab.stage import report_errors
from rnnlab.tasks.classification.evaluation import (
    MAX_CURVE_POINTS,
    Predictions,
    evaluate,
    metrics_report,
    mlflow_metrics,
    plot_tables,
    quantile_edges,
    thin,
)
from synthetic import run_stage, run_train, stage_overrides, tiny_overrides

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"

# Eight reviews: P(pos), label, tokens before truncation. Threshold 0.5 predicts [1,1,0,1,0,0,1,1].
P_POS = [0.9, 0.8, 0.3, 0.6, 0.2, 0.1, 0.7, 0.55]
LABELS = [1, 1, 1, 0, 0, 0, 1, 0]
TOKENS = [50, 100, 101, 150, 200, 201, 400, 401]


def binary_case() -> Predictions:
    p = torch.tensor(P_POS, dtype=torch.float64)
    return Predictions(torch.stack([1 - p, p], 1), torch.tensor(LABELS), torch.tensor(TOKENS))


def test_binary_metrics_match_a_hand_count():
    result = evaluate(binary_case())
    # TP = rows 0, 1, 6; FN = row 2; FP = rows 3, 7; TN = rows 4, 5.
    tp, fn, fp, tn = 3, 1, 2, 2
    precision, recall = tp / (tp + fp), tp / (tp + fn)
    assert result.scores["acc"] == pytest.approx((tp + tn) / 8)
    assert result.scores["precision"] == pytest.approx(precision)
    assert result.scores["recall"] == pytest.approx(recall)
    assert result.scores["f1"] == pytest.approx(2 * precision * recall / (precision + recall))
    assert result.confusion.tolist() == [[tn, fp], [fn, tp]]  # rows actual, columns predicted
    # AUROC: of the 4 x 4 (positive, negative) pairs, the positive scores higher in 4 + 4 + 4 + 2.
    assert result.scores["auroc"] == pytest.approx(14 / 16)
    p_true = [p if y else 1 - p for p, y in zip(P_POS, LABELS, strict=True)]
    assert result.scores["loss"] == pytest.approx(-sum(math.log(p) for p in p_true) / 8)
    assert result.n == 8 and result.predicted.tolist() == [1, 1, 0, 1, 0, 0, 1, 1]
    # Buckets: rows 0-1 right; rows 2, 3 wrong and 4 right; rows 5-6 right; row 7 wrong.
    report = metrics_report(result)
    assert report["length_buckets"] == {
        "<=100": {"acc": 1.0, "n": 2},
        "101-200": {"acc": pytest.approx(1 / 3), "n": 3},
        "201-400": {"acc": 1.0, "n": 2},
        ">400": {"acc": 0.0, "n": 1},
    }
    assert json.loads(json.dumps(report))["n"] == 8  # plain JSON, no tensors


def test_positive_label_chooses_the_scored_class():
    """With class 0 positive, the same predictions swap TP/TN and FP/FN; accuracy and AUROC stay."""
    result = evaluate(binary_case(), positive=0)
    tp, fn, fp, tn = 2, 2, 1, 3  # positive = label 0: rows 4, 5 found; rows 3, 7 missed; row 2 wrongly 0
    precision, recall = tp / (tp + fp), tp / (tp + fn)
    assert result.scores["precision"] == pytest.approx(precision)
    assert result.scores["recall"] == pytest.approx(recall)
    assert result.scores["f1"] == pytest.approx(2 * precision * recall / (precision + recall))
    assert result.scores["acc"] == pytest.approx((tp + tn) / 8)
    assert result.scores["auroc"] == pytest.approx(14 / 16)
    assert result.predicted.tolist() == [1, 1, 0, 1, 0, 0, 1, 1]  # class indices, whichever is positive
    assert result.confusion.tolist() == [[2, 2], [1, 3]]


def test_curves_and_tables():
    result = evaluate(binary_case())
    fpr, tpr = result.roc
    assert (fpr[0], tpr[0], fpr[-1], tpr[-1]) == (0, 0, 1, 1) and np.all(np.diff(fpr) >= 0)
    assert np.trapezoid(tpr, fpr) == pytest.approx(result.scores["auroc"])  # no points were dropped
    tables = plot_tables(result, ["neg", "pos"])
    assert list(tables["roc"].columns) == ["fpr", "tpr"]
    assert list(tables["pr"].columns) == ["recall", "precision"]
    confusion = tables["confusion"]
    assert list(confusion.columns) == ["actual", "predicted"] and len(confusion) == 8
    assert pd.crosstab(confusion.actual, confusion.predicted).to_numpy().tolist() == result.confusion.tolist()
    assert confusion.iloc[7].tolist() == ["neg", "pos"]
    assert tables["length_buckets"].to_dict("list") == {
        "bucket": ["<=100", "101-200", "201-400", ">400"],
        "n": [2, 3, 2, 1],
        "acc": [1.0, pytest.approx(1 / 3), 1.0, 0.0],
    }
    with pytest.raises(ConfigError, match="do not match the model's 2 classes"):
        plot_tables(result, ["neg", "neutral", "pos"])


def test_multiclass_metrics_match_a_hand_count():
    # 3 classes, 6 examples; predictions (argmax) 0, 1, 2, 2, 1, 0 against labels 0, 1, 2, 0, 1, 2.
    probs = torch.tensor(
        [
            [0.8, 0.1, 0.1],
            [0.1, 0.7, 0.2],
            [0.1, 0.2, 0.7],
            [0.3, 0.1, 0.6],
            [0.2, 0.5, 0.3],
            [0.5, 0.1, 0.4],
        ],
        dtype=torch.float64,
    )
    result = evaluate(Predictions(probs, torch.tensor([0, 1, 2, 0, 1, 2]), torch.full((6,), 10)))
    assert result.confusion.tolist() == [[1, 0, 1], [0, 2, 0], [1, 0, 1]]
    assert result.scores["acc"] == pytest.approx(4 / 6)
    # Per class precision = recall = F1: 1/2, 1, 1/2; macro average 2/3.
    for key in ("precision", "recall", "f1"):
        assert result.scores[key] == pytest.approx(2 / 3), key
    assert 0 <= result.scores["auroc"] <= 1
    fpr, tpr = result.roc  # micro-averaged one-vs-rest curve: same columns as a binary task
    assert (fpr[0], tpr[0], fpr[-1], tpr[-1]) == (0, 0, 1, 1)


def test_bucket_edges_are_inclusive():
    counts = torch.tensor([0, 1, 100, 101, 200, 201, 400, 401, 10_000])
    assert assign_buckets(counts, [100, 200, 400]).tolist() == [0, 0, 0, 1, 1, 2, 2, 3, 3]
    assert bucket_names([100, 200, 400]) == ["<=100", "101-200", "201-400", ">400"]
    assert bucket_names([50]) == ["<=50", ">50"]
    assert [metric_key(n) for n in bucket_names([100, 200, 400])] == ["le100", "101_200", "201_400", "gt400"]


def test_empty_buckets_have_no_accuracy():
    result = evaluate(binary_case(), [10, 20, 400])
    assert [(b.name, b.n, b.acc) for b in result.buckets][:2] == [("<=10", 0, None), ("11-20", 0, None)]
    metrics = mlflow_metrics(result)
    assert "test/acc_len_le10" not in metrics and metrics["test/n_len_le10"] == 0
    assert metrics["test/acc_len_gt400"] == 0.0 and metrics["test/n_len_21_400"] == 7
    assert metrics["test/acc"] == pytest.approx(5 / 8)


@pytest.mark.parametrize(
    "edges", [[], [200, 100], [100, 100], [0, 100], [100.5], ["100"], [True], 100, "100", None]
)
def test_bad_bucket_edges_are_a_clear_error(edges):
    with pytest.raises(ConfigError, match=r"eval.length_buckets=.* is not allowed; give positive"):
        check_bucket_edges(edges)


def test_thin_keeps_the_ends_and_at_most_max_points():
    x = np.linspace(0, 1, 25_001)
    thinned = thin((x, x**2))
    assert len(thinned[0]) <= MAX_CURVE_POINTS and len(thinned[0]) >= MAX_CURVE_POINTS - 1
    assert (thinned[0][0], thinned[0][-1]) == (0, 1) and np.all(thinned[1] == thinned[0] ** 2)
    assert len(thin((x[:10], x[:10]))[0]) == 10


# ------------------------------------------------------------------------------------------------------------
# pipelines/evaluate.py on a tiny trained GRU


def run_evaluate(project_root: Path, args: list[str], expect_rc: int = 0) -> subprocess.CompletedProcess:
    return run_stage(project_root, "evaluate", args, expect_rc)


@pytest.fixture(scope="module")
def evaluated(tmp_path_factory, project_root, data):
    """A GRU trained for one epoch, then evaluated with buckets <=5, 6-10, >10 tokens."""
    import mlflow

    work = tmp_path_factory.mktemp("evaluate")
    encoded = work / "encoded"
    shutil.copytree(data[0], encoded)
    meta = json.loads((encoded / "meta.json").read_text())
    (encoded / "meta.json").write_text(json.dumps({**meta, "label_names": ["neg", "pos"]}))
    uri = f"sqlite:///{work / 'mlflow.db'}"
    mlflow.MlflowClient(tracking_uri=uri).create_experiment("imdb", (work / "mlartifacts").as_uri())
    args = [*tiny_overrides(work, encoded, data[1], uri), "model=gru"]
    # As train@gru; one epoch: a few errors left.
    run_train(project_root, [*args, *stage_overrides("gru"), "trainer.max_epochs=1"])
    done = run_evaluate(project_root, [*args, "eval.length_buckets=[5,10]"])
    train = json.loads((work / "reports" / "train" / "gru.json").read_text())
    return work, uri, train, done


def test_evaluate_writes_metrics_that_agree_with_training(evaluated, data):
    work, _, train, done = evaluated
    folder = work / "reports" / "eval" / "gru"
    assert sorted(p.name for p in (work / "reports" / "eval").iterdir()) == ["gru"]  # no temporary folders
    metrics = json.loads((folder / "metrics.json").read_text())
    assert abs(metrics["acc"] - train["test/acc"]) <= 1e-6  # same checkpoint, same test data
    assert metrics["loss"] == pytest.approx(train["test/loss"], abs=1e-5)
    assert metrics["auroc"] == pytest.approx(train["test/auroc"], abs=1e-5)
    assert metrics["f1"] == pytest.approx(train["test/f1"], abs=1e-5)
    counts = np.load(data[0] / "test" / "token_counts.npy")
    buckets = metrics["length_buckets"]
    assert list(buckets) == ["<=5", "6-10", ">10"] and metrics["n"] == len(counts) == 60
    assert [b["n"] for b in buckets.values()] == [
        int((counts <= 5).sum()),
        int(((counts > 5) & (counts <= 10)).sum()),
        int((counts > 10).sum()),
    ]
    assert sum(b["acc"] * b["n"] for b in buckets.values()) / 60 == pytest.approx(metrics["acc"])
    line = done.stdout.strip().splitlines()[-1]
    assert line.startswith(f"[evaluate] model=gru acc={metrics['acc']:.4f} f1=") and "len>10=" in line


def test_evaluate_writes_plot_data_and_images(evaluated):
    work, _, _, _ = evaluated
    plots = work / "reports" / "eval" / "gru" / "plots"
    assert sorted(p.name for p in plots.iterdir()) == sorted(
        f"{name}.{ext}" for name in ("roc", "pr", "confusion", "length_buckets") for ext in ("csv", "png")
    )
    for png in plots.glob("*.png"):
        assert png.read_bytes()[:8] == PNG_MAGIC, png
    roc = pd.read_csv(plots / "roc.csv")
    assert list(roc.columns) == ["fpr", "tpr"] and 2 <= len(roc) <= MAX_CURVE_POINTS
    assert list(pd.read_csv(plots / "pr.csv").columns) == ["recall", "precision"]
    confusion = pd.read_csv(plots / "confusion.csv")
    assert len(confusion) == 60 and set(confusion.actual) == {"neg", "pos"}
    acc = json.loads((plots.parent / "metrics.json").read_text())["acc"]
    assert (confusion.actual == confusion.predicted).mean() == pytest.approx(acc)
    assert pd.read_csv(plots / "length_buckets.csv").bucket.tolist() == ["<=5", "6-10", ">10"]


def test_evaluate_logs_to_the_training_run(evaluated):
    import mlflow

    work, uri, train, _ = evaluated
    client = mlflow.MlflowClient(tracking_uri=uri)
    runs = client.search_runs([client.get_experiment_by_name("imdb").experiment_id])
    assert [run.info.run_id for run in runs] == [train["run_id"]]  # no new run
    logged = runs[0].data.metrics
    metrics = json.loads((work / "reports" / "eval" / "gru" / "metrics.json").read_text())
    for key in ("acc", "precision", "recall", "f1", "auroc", "loss"):
        assert logged[f"test/{key}"] == pytest.approx(metrics[key]), key
    assert logged["test/acc_len_gt10"] == pytest.approx(metrics["length_buckets"][">10"]["acc"])
    assert logged["test/n_len_6_10"] == metrics["length_buckets"]["6-10"]["n"]
    artifacts = {a.path for a in client.list_artifacts(train["run_id"], "eval")}
    assert artifacts == {"eval/metrics.json", "eval/plots"}
    images = {a.path for a in client.list_artifacts(train["run_id"], "eval/plots")}
    assert {"eval/plots/roc.png", "eval/plots/confusion.png", "eval/plots/roc.csv"} <= images


def evaluate_in_process(project_root: Path, overrides: list[str]) -> int:
    """pipelines/evaluate.py's stage function on a composed config, under its error reporting (Hydra passes a
    composed config straight through): no subprocess start-up to wait for. Its exit status."""
    script = project_root / "pipelines" / "evaluate.py"
    spec = importlib.util.spec_from_file_location("evaluate_stage", script)
    stage = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(stage)
    with initialize_config_dir(str(project_root / "conf"), version_base="1.3"):
        cfg = compose("config", overrides)
    with pytest.raises(SystemExit) as exited:
        report_errors(stage.main.__wrapped__)(cfg)
    return exited.value.code


def test_missing_checkpoint_is_a_clear_error(tmp_path, project_root, data, capsys):
    overrides = [f"paths.{key}={tmp_path / key}" for key in ("models_dir", "reports_dir")]
    code = evaluate_in_process(project_root, [*overrides, f"paths.encoded_dir={data[0]}", "+model_key=lstm"])
    assert code == 2
    message = capsys.readouterr().err
    assert f"{tmp_path}/models_dir/lstm/checkpoints/best.ckpt is missing" in message
    assert "run `dvc repro train@lstm` first" in message and not (tmp_path / "reports_dir").exists()


def test_run_dir_must_hold_a_finished_run_of_the_model(tmp_path, project_root, data, capsys):
    """`run_dir=<folder>`: a folder without a finished run, or with another cell's, is refused by name."""
    run = tmp_path / "runs" / "lstm" / "2026-01-01_00-00-00-abcdef"
    args = [f"paths.encoded_dir={data[0]}", f"paths.reports_dir={tmp_path / 'reports'}", "model=gru"]
    assert evaluate_in_process(project_root, [*args, f"run_dir={run}"]) == 2
    assert f"run_dir={run}: {run} holds no finished training run" in capsys.readouterr().err
    (run / "checkpoints").mkdir(parents=True)
    (run / "checkpoints" / "best.ckpt").write_bytes(b"")
    (run / "report.json").write_text(json.dumps({"model": "lstm", "run_id": "0" * 32}))
    assert evaluate_in_process(project_root, [*args, f"run_dir={run}"]) == 2
    assert "trained model lstm, not model=gru: pass model=lstm" in capsys.readouterr().err
    assert not (run / "eval").exists() and not (tmp_path / "reports").exists()


def test_default_buckets_are_the_train_quartiles():
    counts = np.arange(1, 101)  # 1..100 tokens: quartiles 25.75, 50.5, 75.25
    assert quantile_edges(counts) == [26, 50, 75]
    assert quantile_edges(np.full(40, 7)) == [7]  # one length: one edge, buckets <=7 and >7
    with pytest.raises(ConfigError, match="training split is empty"):
        quantile_edges(np.array([], dtype=np.int64))
