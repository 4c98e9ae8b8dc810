"""DVC stage `pretrain` (imdb): word vectors for `model.init_from=word2vec`, learnt by gensim's word2vec from
the training split and the unlabelled reviews (`pretrain.corpus`; rnnlab.pretraining.corpus: never a
validation or test review) in the classifier's tokens and vocabulary; an MLflow run of its own, which the
classifier runs starting from it name (param and tag `pretrain_run_id`, and a link in their description).

    python pipelines/pretrain.py
    python pipelines/pretrain.py pretrain.word2vec.epochs=10
    python pipelines/pretrain.py 'pretrain.corpus=[train]' paths.pretrain_dir=models/imdb/pretrain-labelled \
        paths.reports_dir=reports/imdb-labelled   # the labelled reviews alone, beside the pipeline's vectors
Writes `<paths.pretrain_dir>/word2vec/{vectors.txt,review_ids.txt}` and `<reports_dir>/pretrain/word2vec.json`
(corpus, vocabulary coverage, time, the MLflow run).
"""

from __future__ import annotations

import hashlib
import time
from pathlib import Path

from mlflow import MlflowClient
from mlflow.entities import Metric, Param
from omegaconf import DictConfig, OmegaConf

from rnnlab import tracking
from rnnlab.config import project_root, resolve_path, section
from rnnlab.data.vocab import Vocabulary
from rnnlab.errors import ConfigError
from rnnlab.io import atomic_dir, write_json
from rnnlab.pretraining.corpus import read_corpus
from rnnlab.pretraining.outputs import REVIEW_IDS, VECTORS, outputs
from rnnlab.pretraining.word2vec import train_word2vec, vocabulary_coverage, write_vectors, written_tokens
from rnnlab.stage import entry_point, summary

METHOD = "word2vec"


@entry_point
def main(cfg: DictConfig) -> None:
    if OmegaConf.select(cfg, f"pretrain.{METHOD}") is None:
        raise ConfigError(
            f"task={cfg.task.name} has no pretrain.{METHOD} section: pretraining is for text "
            "classification (task=imdb)"
        )
    settings = section(cfg, f"pretrain.{METHOD}")
    prepared = resolve_path(cfg.paths.prepared_dir)
    tokens = Vocabulary.load(prepared / "vocab.json").tokens
    corpus = read_corpus(prepared, list(cfg.pretrain.corpus))
    started, cpu_started = time.perf_counter(), time.process_time()
    vectors = train_word2vec(corpus, tokens, settings, cfg.seed)
    seconds, cpu_seconds = time.perf_counter() - started, time.process_time() - cpu_started
    written = written_tokens(vectors)
    ids = "".join(f"{review_id}\n" for review_id in corpus.review_ids)
    report = {
        "method": METHOD,
        "vector_size": settings["vector_size"],
        "settings": settings,
        "seed": cfg.seed,
        "corpus": {
            "texts": {**corpus.texts, "total": len(corpus)},
            "tokens": len(corpus.ids),
            "review_ids_sha256": hashlib.sha256(ids.encode()).hexdigest(),
        },
        "vocabulary": vocabulary_coverage(written, tokens),
        "vectors": len(written),
        "train_seconds": round(seconds, 1),
        "train_cpu_seconds": round(cpu_seconds, 1),  # on a busy machine, the fairer figure
    }
    found = outputs(cfg, METHOD)
    with atomic_dir(found.folder) as folder:
        with open(folder / VECTORS, "w", encoding="utf-8") as handle:
            write_vectors(vectors, written, handle)
        (folder / REVIEW_IDS).write_text(ids, encoding="utf-8")
        report.update(log_run(cfg, report, folder))
    write_json(found.report, report)
    summary(
        "pretrain",
        method=METHOD,
        **corpus.texts,
        tokens=len(corpus.ids),
        vectors=len(written),
        coverage=f"{report['vocabulary']['coverage']:.2%}",
        seconds=report["train_seconds"],
        cpu_seconds=report["train_cpu_seconds"],
    )


def log_run(cfg: DictConfig, report: dict, folder: Path) -> dict[str, str]:
    """An MLflow run of its own (`<experiment>-word2vec-<id>`, tag `pretrain`): the settings, the corpus and
    coverage figures, and the files of `folder` (the vectors, the review ids) as artifacts."""
    root = project_root()
    experiment = cfg.logger.experiment_name
    uri = tracking.tracking_uri(cfg.logger.tracking_uri, root)
    client = MlflowClient(tracking_uri=uri)
    experiment_id = tracking.ensure_experiment(experiment, uri, root)
    texts, vocabulary = report["corpus"]["texts"], report["vocabulary"]
    described = " + ".join(f"{name} {n:,}" for name, n in texts.items() if name != "total")
    run = client.create_run(
        experiment_id,
        run_name=tracking.run_name(experiment, METHOD),
        tags={
            "pretrain": METHOD,
            "git_commit": tracking.git_commit(root),
            "corpus_ids_sha256": report["corpus"]["review_ids_sha256"],
            "mlflow.note.content": f"{METHOD} {report['vector_size']}-d on {texts['total']:,} texts "
            f"({described}; no validation or test text): {vocabulary['with_vector']:,} of "
            f"{vocabulary['tokens']:,} vocabulary tokens have a vector",
            **tracking.source_tags(),
        },
    )
    run_id, now = run.info.run_id, int(time.time() * 1000)
    params = {
        **{f"pretrain/{METHOD}/{key}": value for key, value in report["settings"].items()},
        "pretrain/corpus": ",".join(cfg.pretrain.corpus),
        "seed": report["seed"],
        "data/name": cfg.data.name,
        "vocab_size": vocabulary["tokens"] + len(Vocabulary.SPECIALS),
    }
    metrics = {
        **{f"pretrain/texts_{name}": n for name, n in texts.items()},
        "pretrain/tokens": report["corpus"]["tokens"],
        "pretrain/vocab_coverage": vocabulary["coverage"],
        "pretrain/train_seconds": report["train_seconds"],
        "pretrain/train_cpu_seconds": report["train_cpu_seconds"],
    }
    client.log_batch(
        run_id,
        metrics=[Metric(key, float(value), now, 0) for key, value in metrics.items()],
        params=[Param(key, str(value)) for key, value in params.items()],
    )
    client.log_artifacts(run_id, str(folder), METHOD)
    client.set_terminated(run_id)
    return {"run_id": run_id, "experiment_id": experiment_id}


if __name__ == "__main__":
    main()
