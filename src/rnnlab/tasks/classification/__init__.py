"""Text classification (IMDB sentiment): download and tokenize the reviews, `SequenceClassifier` on the
encode stage's arrays, the test-set evaluation with ROC, precision-recall, confusion matrix and accuracy
by review length (evaluation), the ONNX export (exporting, onnx_export) and the registration as an MLflow
pyfunc on raw text (registration, pyfunc)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from omegaconf import DictConfig, OmegaConf

from rnnlab.buckets import check_bucket_edges
from rnnlab.config import resolve_path, section
from rnnlab.data.sources import KINDS as SOURCES
from rnnlab.errors import LayoutError
from rnnlab.io import write_json
from rnnlab.models.choices import ADVERSARIAL_MODES, SCHEDULERS
from rnnlab.pretraining.corpus import SOURCES as CORPUS_SOURCES
from rnnlab.pretraining.outputs import INIT_FROM, LM, NONE, pretrained_init
from rnnlab.rules import choice, either, integer, items, nullable, number, passes, refused
from rnnlab.tasks import Built, Comparison, Evaluated, optim_args
from rnnlab.tasks.classification.acquisition import download as download
from rnnlab.tasks.classification.exporting import export as export
from rnnlab.tasks.classification.preparation import prepare as prepare
from rnnlab.tasks.classification.registration import register as register
from rnnlab.tasks.classification.registration import registry_name as registry_name

if TYPE_CHECKING:  # the functions import what they use: validation and the data stages need no torch
    import numpy as np

    from rnnlab.tasks.classification import evaluation
    from rnnlab.tasks.classification.classifier import SequenceClassifier
    from rnnlab.tasks.classification.sequence_data import SequenceDataModule

HAS_TEST = True
DEPLOYS = True
COMPARE = Comparison(
    columns={
        "params": ("train", "params"),
        "epochs": ("train", "epochs"),
        "train_seconds": ("train", "train_seconds"),
        "train_seq_per_s": ("train", "train_seq_per_s"),
        "val_acc": ("train", "val_acc_best"),
        "test_acc": ("eval", "acc"),
        "test_f1": ("eval", "f1"),
        "test_auroc": ("eval", "auroc"),
        "test_loss": ("eval", "loss"),
    },
    rank_by="val_acc",
    higher_is_better=True,
    percent=("val_acc", "test_acc", "test_f1", "test_auroc"),
    test_column="test_acc",
    by_length="acc",
)
COMPARE_HEADER = "Accuracy, F1 and AUROC in %; `acc_len` columns: test accuracy by review length in tokens."
MONITORS = {"val/acc": "max", "val/f1": "max", "val/auroc": "max", "val/loss": "min"}
SOURCE_KINDS = SOURCES
RULES = {
    "baseline.ngram_max": integer(1),
    "baseline.min_df": integer(1),
    "baseline.C": items(number(0, open_low=True)),
    "baseline.max_iter": integer(1),
    "train.adversarial": choice(ADVERSARIAL_MODES),
    "train.adversarial_epsilon": number(0, open_low=True),
    "train.adversarial_xi": number(0, open_low=True),
    "model.init_from": choice(INIT_FROM),
    "models.*.init_from": choice(INIT_FROM),
    "pretrain.corpus": items(choice(CORPUS_SOURCES), unique=True),
    "pretrain.word2vec.vector_size": integer(1),
    "pretrain.word2vec.window": integer(1),
    "pretrain.word2vec.min_count": integer(1),
    "pretrain.word2vec.sg": choice((0, 1)),
    "pretrain.word2vec.negative": integer(1),
    "pretrain.word2vec.sample": number(0),
    "pretrain.word2vec.epochs": integer(1),
    "pretrain.lm.epochs": integer(1),
    "pretrain.lm.batch_size": integer(1),
    "pretrain.lm.chunk_len": integer(1),
    "pretrain.lm.cutoffs": items(integer(1), min_len=0),
    "pretrain.lm.div_value": number(0, open_low=True),
    "pretrain.lm.lr": number(0, open_low=True),
    "pretrain.lm.weight_decay": number(0),
    "pretrain.lm.scheduler": choice(SCHEDULERS),
    "pretrain.lm.early_stopping_patience": integer(0),
    "pretrain.lm.checkpoint_every_n_steps": integer(0),
    "pretrain.lm.limit_train_batches": either(number(0, 1, open_low=True), integer(1), bad=(0, 1.5)),
    "pretrain.lm.limit_val_batches": either(number(0, 1, open_low=True), integer(1), bad=(0, 1.5)),
    "eval.length_buckets": nullable(
        passes(
            check_bucket_edges,
            "a non-empty list of positive, strictly increasing token counts",
            ([200, 100], [0]),
        ),
        "the quartiles of the training texts' lengths",
    ),
}


def relations(cfg: dict[str, Any], key: str, trained: dict[str, Any]) -> Iterator[str]:
    if trained.get("init_from", NONE) == NONE:
        return
    if trained.get("pretrained_embeddings"):
        yield refused(
            f"{key}.pretrained_embeddings",
            trained["pretrained_embeddings"],
            f"null ({key}.init_from={trained['init_from']} gives the embedding its weights)",
        )
    size = ((cfg.get("pretrain") or {}).get(trained["init_from"]) or {}).get("vector_size")
    if size is not None and trained.get("embedding_dim") != size:
        yield refused(
            f"{key}.embedding_dim",
            trained.get("embedding_dim"),
            f"{size} (pretrain.{trained['init_from']}.vector_size; {key}.init_from={trained['init_from']})",
        )


def positive_index(meta: dict[str, Any]) -> int:
    """The index of the positive class in the encoded data's meta.json (1 for data prepared before it)."""
    label = meta.get("positive_label")
    return meta["label_names"].index(label) if label is not None else 1


def data_dir(cfg: DictConfig) -> Path:
    return resolve_path(cfg.paths.encoded_dir)


def datamodule(cfg: DictConfig) -> SequenceDataModule:
    from rnnlab.tasks.classification.sequence_data import SequenceDataModule

    vat = OmegaConf.select(cfg, "train.adversarial") == "vat"  # its training batches add unlabelled texts
    return SequenceDataModule(data_dir(cfg), seed=cfg.seed, unlabelled=vat, **section(cfg, "data.loader"))


def build_model(cfg: DictConfig, model_cfg: dict[str, Any], data: SequenceDataModule) -> Built:
    """The classifier; with `model.init_from=word2vec` its embedding starts from the pretrain stage's vectors,
    with `lm` its embedding and first recurrent layer from the cell's language model (pretrain_lm@<cell>); the
    run links to the pretraining run."""
    from rnnlab.pretraining.transfer import init_from_language_model, load_language_model
    from rnnlab.tasks.classification.builder import adversarial_args, build_classifier

    vocab_path = resolve_path(cfg.paths.prepared_dir) / "vocab.json"
    init = pretrained_init(cfg, model_cfg)
    model, coverage = build_classifier(
        model_cfg,
        optim_args(cfg),
        data.num_classes,
        vocab_path,
        positive_index(data.meta),
        adversarial_args(section(cfg, "train")),
        vectors=None if init is None or init.method == LM else init.path,
    )
    if init is not None and init.method == LM:
        init_from_language_model(model, load_language_model(init.path))
    metrics = {} if coverage is None else {"embeddings/pretrained_coverage": coverage}
    params = {"vocab_size": model.hparams.vocab_size, "num_classes": model.hparams.num_classes}
    if data.unlabelled:
        params["vat/unlabelled_rows"] = (
            data.unlabelled_rows
        )  # the texts VAT's unlabelled batches cycle through
    if init is None:
        return Built(model, params, metrics)
    return Built(model, params, metrics, links=init.links(), note=init.note())


def callbacks(
    cfg: DictConfig, model_cfg: dict[str, Any], data: SequenceDataModule, diagnostics_dir: Path
) -> list:
    """Gradient flow over time on fixed validation reviews; the embedding freeze when configured."""
    from rnnlab.callbacks import EmbeddingFreeze
    from rnnlab.diagnostics.callbacks import GradientFlowMonitor
    from rnnlab.diagnostics.gradient_flow import EncodedBatchSource

    flow = cfg.diagnostics.gradient_flow
    source = EncodedBatchSource(data_dir(cfg), "val", flow.rows, cfg.seed)
    found: list = [
        GradientFlowMonitor(source, list(flow.epochs), flow.steps, flow.distance, out_dir=diagnostics_dir)
    ]
    epochs = model_cfg["freeze_embeddings_epochs"]
    return found + ([EmbeddingFreeze(epochs)] if epochs > 0 else [])


def artifacts(cfg: DictConfig) -> list[Path]:
    return [resolve_path(cfg.paths.prepared_dir) / "vocab.json"]


def load_model(checkpoint: Path) -> SequenceClassifier:
    from rnnlab.tasks.classification.classifier import SequenceClassifier

    return SequenceClassifier.load_from_checkpoint(checkpoint, map_location="cpu")


def evaluate(
    cfg: DictConfig, name: str, model: SequenceClassifier, data: SequenceDataModule, folder: Path
) -> Evaluated:
    """Test-set scores, accuracy per review-length bucket, and their plots (CSV for DVC, PNG)."""
    import torch

    from rnnlab.tasks.classification import evaluation

    check_compatible(model, data.meta, name)
    edges = length_bucket_edges(cfg)
    device = "cuda" if torch.cuda.is_available() else "cpu"
    positive = positive_index(data.meta)
    result = evaluation.evaluate(evaluation.predict(model, data.test_dataloader(), device), edges, positive)
    label_names = data.meta.get("label_names") or [str(i) for i in range(data.num_classes)]
    report = {**evaluation.metrics_report(result), "positive_label": data.meta.get("positive_label")}
    write_json(folder / "metrics.json", report)
    write_plots(result, label_names, folder / "plots", name)
    scores = result.scores
    facts = {key: f"{scores[key]:.4f}" for key in ("acc", "f1", "auroc")}
    facts["f1_of"] = label_names[positive] if data.num_classes == 2 else "macro"
    facts.update({f"len{b.name}": "n/a" if b.acc is None else f"{b.acc:.4f}" for b in result.buckets})
    return Evaluated(report, evaluation.mlflow_metrics(result), facts)


def length_bucket_edges(cfg: DictConfig, train_token_counts: np.ndarray | None = None) -> list[int]:
    """`eval.length_buckets`, or (null) the quartiles of the training texts' token counts (read from the
    encoded data unless given)."""
    from rnnlab.data.store import EncodedSplit
    from rnnlab.tasks.classification import evaluation

    configured = OmegaConf.select(cfg, "eval.length_buckets", default=None)
    if configured is not None:
        return check_bucket_edges(configured)
    if train_token_counts is None:
        train_token_counts = EncodedSplit.load(data_dir(cfg) / "train").token_counts
    return evaluation.quantile_edges(train_token_counts)


def check_compatible(model: SequenceClassifier, meta: dict[str, Any], name: str) -> None:
    """The checkpoint's vocabulary size and classes must match the encoded data's meta.json."""
    trained = {"vocab_size": model.hparams.vocab_size, "num_classes": model.hparams.num_classes}
    encoded = {key: meta.get(key) for key in trained}
    if trained != encoded:
        raise LayoutError(
            f"the {name} checkpoint was trained with {trained}, but the encoded data has {encoded}: "
            f"run `dvc repro train@{name}` on this data"
        )


def write_plots(result: evaluation.Evaluation, label_names: list[str], figures: Path, name: str) -> None:
    """CSV data for DVC's templates, and the same plots as PNG images."""
    from rnnlab import plots
    from rnnlab.tasks.classification import evaluation

    figures.mkdir()
    for table, frame in evaluation.plot_tables(result, label_names).items():
        frame.to_csv(figures / f"{table}.csv", index=False)
    plots.roc_curve(*result.roc, figures / "roc.png", f"ROC (test), {name}", result.scores["auroc"])
    plots.precision_recall_curve(*result.pr, figures / "pr.png", f"Precision-recall (test), {name}")
    plots.confusion_matrix(
        result.confusion.numpy(), label_names, figures / "confusion.png", f"Confusion matrix (test), {name}"
    )
    plots.bucket_accuracy(
        [b.name for b in result.buckets],
        [b.acc for b in result.buckets],
        [b.n for b in result.buckets],
        figures / "length_buckets.png",
        f"Test accuracy by review length, {name}",
    )


def compare_plots(table: Any, folder: Path) -> None:
    """The compare stage's PNGs: accuracy against size, and accuracy by review length; the baseline's point
    is a cross labelled with what its parameter count counts, its bars hatched."""
    from rnnlab import plots
    from rnnlab.comparison import BASELINE, length_buckets

    has = BASELINE in table.index
    weights = {BASELINE: f"{BASELINE} (baseline): logistic-regression weights"} if has else {}
    plots.accuracy_vs_params(table, folder / "accuracy_vs_params.png", weights)
    named = {BASELINE: f"{BASELINE} (baseline)"} if has else {}
    plots.score_by_length(length_buckets(table, COMPARE), folder / "accuracy_by_length.png", named)
