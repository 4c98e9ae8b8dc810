"""Your own table as a data set, as the README's "Bring your own data" recipe runs it: `rnnlab data add` +
`use`, the DVC pipeline with everything keyed by the data set's name, the selection kept by later
`dvc exp run`s, a second table beside the first, and `dvc exp show` readable in 120 columns."""

from __future__ import annotations

import json

import mlflow
import pytest
import yaml

from dvc_repo import commit, project_copy, run
from synthetic import class_word_table

CELLS = ("rnn", "lstm", "gru", "bilstm")
SMOKE = [
    "-S",
    "experiment=smoke",
    "-S",
    "diagnostics.gradient_flow.steps=8",
    "-S",
    "diagnostics.gradient_flow.distance=4",
]


def tree(folder) -> dict[str, bytes]:
    """Every file under `folder` with its bytes (to show that nothing in it changed)."""
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def reviews(tmp_path_factory, project_root):
    """A project copy whose selected data set is the two-class table `reviews`, after the README's recipe."""
    work = tmp_path_factory.mktemp("own-data")
    env = project_copy(project_root, work, mlflow_store=True, OMP_NUM_THREADS="1")
    env = {k: v for k, v in env.items() if not k.startswith("RNNLAB_")}
    class_word_table(work / "reviews.csv", ("neg", "pos"), rows=400, columns=("review", "sentiment"))
    class_word_table(work / "tickets.csv", ("bug", "howto", "billing"), rows=300)
    added = run(
        [
            "rnnlab",
            "data",
            "add",
            "reviews",
            "--path",
            "reviews.csv",
            "--text-column",
            "review",
            "--label-column",
            "sentiment",
            "--positive-label",
            "pos",
            "--use",
        ],
        work,
        env,
    )
    run(
        [
            "rnnlab",
            "data",
            "add",
            "tickets",
            "--path",
            "tickets.csv",
            "--text-column",
            "review",
            "--label-column",
            "topic",
        ],
        work,
        env,
    )
    commit(work, env, "data sets")
    first = run(["dvc", "exp", "run", "dvc.yaml", *SMOKE], work, env)
    commit(work, env, "reviews pipeline")
    return work, env, added, first


def test_data_add_checks_the_table_and_writes_a_config(reviews):
    work, env, added, _ = reviews
    assert "classes=neg:199,pos:199 dropped=2" in added and "[data use] data=reviews (was imdb)" in added
    written = yaml.safe_load((work / "conf/data/reviews.yaml").read_text())
    assert written["defaults"] == ["table", "_self_"] and written["positive_label"] == "pos"
    assert written["source"]["text_column"] == "review" and len(written["source"]["sha256"]) == 64
    assert written["source"]["uri"] == "reviews.csv"  # inside the project: relative to its root
    assert "- data: reviews" in (work / "conf/config.yaml").read_text()
    for args, message in (
        (["data", "add", "x", "--path", "reviews.csv", "--text-column", "body"], "has no column 'body'"),
        (["data", "add", "Bad Name", "--path", "reviews.csv"], "data set name 'Bad Name' is not allowed"),
        (["data", "add", "reviews", "--path", "reviews.csv"], "conf/data/reviews.yaml exists"),
        (["data", "use", "nosuch"], "no data set 'nosuch'"),
    ):
        out = run(["rnnlab", *args], work, env, expect_rc=2)
        assert "rnnlab: error: " in out and message in out and "Traceback" not in out, out
    assert not (work / "conf/data/x.yaml").exists()


def test_everything_is_keyed_by_the_data_sets_name(reviews):
    work, _, _, _ = reviews
    for folder in ("data/raw", "data/prepared", "data/encoded", "models", "reports"):
        assert sorted(p.name for p in (work / folder).iterdir()) == ["reviews"], folder
    client = mlflow.MlflowClient(tracking_uri=f"sqlite:///{work / 'mlflow.db'}")
    assert {e.name for e in client.search_experiments()} == {"Default", "reviews"}
    runs = client.search_runs([client.get_experiment_by_name("reviews").experiment_id])
    assert {r.info.run_name.rsplit("-", 1)[0] for r in runs} >= {f"reviews-{c}" for c in CELLS}
    registered = json.loads((work / "reports/reviews/register.json").read_text())
    assert registered["registered_model"] == "reviews-sentiment"
    assert [m.name for m in client.search_registered_models()] == ["reviews-sentiment"]
    compare = (work / "reports/reviews/compare.md").read_text()
    rows = {line.split("|")[1].strip() for line in compare.splitlines() if line.startswith("|")}
    assert {*CELLS, "tfidf_lr (baseline)"} <= rows, compare


def test_the_selection_sticks_and_dvc_exp_show_fits_120_columns(reviews):
    """A later `dvc exp run` with other overrides keeps the data set (conf/config.yaml selects it); only the
    changed cell retrains; the README's `dvc exp show` line shows the four cells in 120 columns."""
    work, env, _, _ = reviews
    out = run(["dvc", "exp", "run", "dvc.yaml", *SMOKE, "-S", "models.gru.hidden_size=24"], work, env)
    assert yaml.safe_load((work / "params.yaml").read_text())["data"]["name"] == "reviews"
    assert "Running stage 'train@gru'" in out and "Running stage 'train@rnn'" not in out
    assert "Running stage 'download'" not in out and not (work / "data/raw/imdb").exists()
    wide = {**env, "COLUMNS": "120"}
    every = run(
        ["dvc", "exp", "show", "--no-pager", "--drop", ".*", "--keep", r"Experiment|.*\.(val|test)$"],
        work,
        wide,
    )
    changed = run(
        [
            "dvc",
            "exp",
            "show",
            "--no-pager",
            "--only-changed",
            "--keep",
            r".*\.test$",
            "--drop",
            r"Created|.*\.val$|(data|models|reports)/[^:]*$",
        ],
        work,
        wide,
    )
    for shown, columns in (
        (every, [f"{c}.{split}" for c in CELLS for split in ("val", "test")]),
        (changed, [*(f"{c}.test" for c in CELLS), "params.yaml:models.gru.hidden_size"]),
    ):
        lines = shown.strip().splitlines()
        assert max(map(len, lines)) <= 120 and "…" not in shown and lines[1].split()[1:] == columns, shown
        assert [line.split()[0] for line in lines[3:5]] == ["workspace", "master"], shown


def test_a_second_table_beside_the_first(reviews):
    """`-S data=tickets` holds for that command only; the second table's outputs sit beside the first's,
    which stay as they were."""
    work, env, _, _ = reviews
    before = {folder: tree(work / folder / "reviews") for folder in ("models", "reports", "data/encoded")}
    out = run(["dvc", "exp", "run", "dvc.yaml:train@gru", *SMOKE, "-S", "data=tickets"], work, env)
    assert "Running stage 'train@gru'" in out
    assert json.loads((work / "data/encoded/tickets/meta.json").read_text())["num_classes"] == 3
    assert (work / "models/tickets/gru/checkpoints/best.ckpt").is_file()
    assert {folder: tree(work / folder / "reviews") for folder in before} == before
    client = mlflow.MlflowClient(tracking_uri=f"sqlite:///{work / 'mlflow.db'}")
    runs = client.search_runs([client.get_experiment_by_name("tickets").experiment_id])
    # the cell's run and the word2vec run of the pretrain stage that train@ depends on, both on tickets
    assert sorted(r.data.tags.get("rnnlab.stage") for r in runs) == ["pretrain", "train@gru"]
    run(["dvc", "exp", "run", "dvc.yaml:encode"], work, env)  # no -S: conf/config.yaml's data set again
    assert yaml.safe_load((work / "params.yaml").read_text())["data"]["name"] == "reviews"


def test_a_stage_without_its_inputs_names_the_command(reviews):
    """A stage whose inputs were never made says which stage makes them: one line, exit 2, no MLflow run."""
    work, env, _, _ = reviews
    client = mlflow.MlflowClient(tracking_uri=f"sqlite:///{work / 'mlflow.db'}")
    before = len(client.search_runs([e.experiment_id for e in client.search_experiments()]))
    for stage, missing, producer in (("prepare", "raw", "download"), ("train", "encoded", "encode")):
        out = run(
            [
                "python",
                f"pipelines/{stage}.py",
                "paths.data_dir=elsewhere",
                "+model_key=rnn",
                "hydra.run.dir=logs/x",
            ],
            work,
            env,
            expect_rc=2,
        )
        path = work / "elsewhere" / missing / "reviews"
        assert f"rnnlab: error: {path}/" in out and f"run `dvc repro {producer}`" in out, out
        assert "Traceback" not in out
    assert len(client.search_runs([e.experiment_id for e in client.search_experiments()])) == before
