"""A three-class table of your own, end to end: download (label hygiene) -> prepare -> encode -> train ->
evaluate (macro F1, one-vs-rest AUROC, 3x3 confusion) -> export -> register -> `rnnlab predict`."""

from __future__ import annotations

import json
import subprocess
import sys

import pandas as pd
import pytest

from mlflow_store import fresh_store
from synthetic import class_word_table, clean_env, run_stage

CLASSES = ("alpha", "beta", "gamma")


@pytest.fixture(scope="module")
def pipeline(tmp_path_factory, project_root):
    work = tmp_path_factory.mktemp("multiclass")
    table = class_word_table(work / "topics.csv", CLASSES)
    uri = fresh_store(work / "mlflow.db")
    args = [
        "data=table",
        f"data.source.uri={table}",
        "data.name=topics",
        "data.source.text_column=review",
        "data.source.label_column=topic",
        f"paths.data_dir={work / 'data'}",
        f"paths.models_dir={work / 'models'}",
        f"paths.reports_dir={work / 'reports'}",
        f"paths.runs_dir={work / 'runs'}",
        f"logger.tracking_uri={uri}",
        f"hydra.run.dir={work / 'hydra'}",
        "experiment=smoke",
        "model=gru",
        "model.hidden_size=16",
        "trainer.max_epochs=3",
        "trainer.accelerator=cpu",
        "optim.lr=0.02",
        "data.loader.batch_size=16",
        "diagnostics.gradient_flow.steps=8",
        "diagnostics.gradient_flow.distance=4",
    ]
    stage_args = {"train": ["+model_key=gru", "models.gru.hidden_size=16"]}  # as the DVC stage train@gru
    outputs = {
        stage: run_stage(project_root, stage, [*args, *stage_args.get(stage, [])]).stdout
        for stage in ("download", "prepare", "encode", "pretrain", "train", "evaluate", "export")
    }
    outputs["register"] = run_stage(project_root, "register", args).stdout
    return work, uri, outputs


def test_download_reports_label_hygiene(pipeline):
    work, _, outputs = pipeline
    line = outputs["download"].strip().splitlines()[-1]
    assert "dropped=2(missing_text=1,missing_label=1)" in line
    assert "classes=alpha:199,beta:200,gamma:199" in line  # rows 5 (gamma) and 6 (alpha) dropped
    stripped = sum(1 for i in range(600) if i % 7 == 0 and i not in (5, 6))
    assert f"labels_stripped={stripped}" in line
    prepare = json.loads((work / "reports/data/prepare.json").read_text())
    assert set(prepare["splits"]["train"]["label_counts"]) == set(CLASSES)


def test_three_classes_are_evaluated_with_macro_scores(pipeline):
    work, _, outputs = pipeline
    meta = json.loads((work / "data/encoded/topics/meta.json").read_text())
    assert meta["label_names"] == list(CLASSES) and meta["num_classes"] == 3
    assert meta["positive_label"] is None  # macro averages with more than two classes
    metrics = json.loads((work / "reports/eval/gru/metrics.json").read_text())
    assert metrics["acc"] > 0.6, metrics  # the class word is in every text: learnable in three epochs
    assert 0.0 < metrics["f1"] <= 1.0 and 0.5 < metrics["auroc"] <= 1.0
    confusion = pd.read_csv(work / "reports/eval/gru/plots/confusion.csv")
    assert set(confusion.actual) == set(CLASSES) and len(confusion) == metrics["n"]
    assert (confusion.actual == confusion.predicted).mean() == pytest.approx(metrics["acc"])
    assert "f1_of=macro" in outputs["evaluate"]


def test_registered_model_predicts_the_table_labels(pipeline):
    work, uri, _ = pipeline
    report = json.loads((work / "reports/register.json").read_text())
    assert report["model"] == "gru" and report["registered_model"] == "topics-sentiment"
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "rnnlab.cli",
            "predict",
            "--model",
            report["model_uri"],
            "--tracking-uri",
            uri,
            "w1 w2 betaword w3",
            "gammaword w4 w5",
        ],
        env=clean_env(),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    labels = [line.split()[0] for line in done.stdout.strip().splitlines()]
    assert labels == ["beta", "gamma"], done.stdout
