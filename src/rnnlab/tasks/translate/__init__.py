"""English -> French translation (tatoeba pairs): a checksummed zip of `english<TAB>french` lines, word
tokenization per language, a split grouped by the English sentence, a vocabulary per language from train;
`Seq2SeqTranslator` (the project's recurrent encoder, attention, a unidirectional decoder); BLEU and chrF
(sacrebleu) of beam-search translations, BLEU by source length and attention heat maps.

The package owns its pieces: pairs (download, reading), text (tokenization), split, vocab, prepare/prepared,
datamodule, attention/decoder/search/seq2seq (the model), scoring and figures (evaluation).
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from omegaconf import DictConfig

from rnnlab.buckets import check_bucket_edges
from rnnlab.config import resolve_path, section
from rnnlab.errors import LayoutError
from rnnlab.io import atomic_dir, atomic_file, write_json
from rnnlab.models.choices import ATTENTIONS, CELLS
from rnnlab.rules import choice, integer, nullable, number, passes, refused
from rnnlab.tasks import Built, Comparison, Evaluated, optim_args, refused_deployment
from rnnlab.tasks.translate.pairs import KIND, fetch_pairs, read_pairs
from rnnlab.tasks.translate.prepared import vocab_file
from rnnlab.tasks.translate.preprocess import DATA_RULES, prepare_from_config

if TYPE_CHECKING:  # the functions import what they use: validation and the data stages need no torch
    import pandas as pd

    from rnnlab.tasks.translate.batches import TranslationDataModule
    from rnnlab.tasks.translate.seq2seq import Seq2SeqTranslator

HAS_TEST = True
DEPLOYS = False  # export and register refuse, naming NOT_DEPLOYED
NOT_DEPLOYED = "`rnnlab translate` translates sentences with the best checkpoint"
RAW_FILE = "pairs.zip"
COMPARE = Comparison(
    columns={
        "params": ("train", "params"),
        "epochs": ("train", "epochs"),
        "train_seconds": ("train", "train_seconds"),
        "val_loss": ("train", "val_loss_best"),
        "val_bleu": ("eval", "val_bleu"),
        "test_bleu": ("eval", "bleu"),
        "test_chrf": ("eval", "chrf"),
    },
    rank_by="val_bleu",
    higher_is_better=True,
    test_column="test_bleu",
    by_length="bleu",
)
COMPARE_HEADER = (
    "BLEU and chrF (sacrebleu, beam search, detokenized output against the raw references; the signature is "
    "in each eval/<model>/metrics.json); `bleu_len` columns: test BLEU by English sentence length in words."
)
MONITORS = {"val/loss": "min", "val/ppl": "min"}
SOURCE_KINDS = (KIND,)
RULES = {
    **DATA_RULES,
    "model.attention": choice(ATTENTIONS),
    "models.*.attention": choice(ATTENTIONS),
    "task.teacher_forcing": number(0, 1),
    "task.samples": integer(0),
    "task.label_smoothing": number(0, 1, open_high=True),
    "task.decoder.cell": nullable(choice(CELLS), "the encoder's cell"),
    "task.decoder.bidirectional": choice((True, False), bad="maybe"),
    "task.decoder.dropout": number(0, 1, open_high=True),
    "eval.beam_size": integer(1),
    "eval.length_penalty": number(0),
    "eval.max_len": integer(1),
    "eval.length_buckets": passes(
        check_bucket_edges, "a non-empty list of positive, strictly increasing word counts", ([8, 5], [0])
    ),
    "eval.heatmaps": integer(0),
}


def relations(cfg: dict[str, Any], key: str, trained: dict[str, Any]) -> Iterator[str]:
    if (cfg["task"].get("decoder") or {}).get("bidirectional"):
        yield refused(
            "task.decoder.bidirectional",
            True,
            "false (the decoder writes the translation left to right and cannot read words it has not "
            "written yet; the encoder may be bidirectional)",
        )
    if trained.get("pretrained_embeddings"):
        yield refused(f"{key}.pretrained_embeddings", trained["pretrained_embeddings"], "null (unused here)")
    languages = (cfg.get("data") or {}).get("languages") or {}
    if languages and languages.get("src") == languages.get("tgt"):
        yield refused("data.languages.tgt", languages.get("tgt"), "a language other than data.languages.src")


def download(cfg: DictConfig) -> dict[str, Any]:
    """The checksummed pairs file (zip or text), copied into `paths.raw_dir` with source.json."""
    source = section(cfg, "data.source")
    path, sha256, pairs = fetch_pairs(
        source,
        cfg.data.name,
        resolve_path(cfg.paths.downloads_dir),
        download_cfg=section(cfg, "data.download"),
    )
    with atomic_dir(resolve_path(cfg.paths.raw_dir)) as out:
        name = RAW_FILE if path.suffix.lower() == ".zip" else source["member"]
        shutil.copyfile(path, out / name)  # byte for byte the file just read and checksummed
        count = len(pairs)
        write_json(out / "source.json", {"uri": str(path), "sha256": sha256, "file": name, "pairs": count})
    return {"source": str(path), "pairs": count, "sha256": sha256[:12]}


def raw_file(cfg: DictConfig) -> Path:
    """The download stage's copy of the pairs: the zip, or the text file the source named."""
    folder = resolve_path(cfg.paths.raw_dir)
    for path in (folder / RAW_FILE, folder / str(cfg.data.source.member)):
        if path.is_file():
            return path
    raise LayoutError(f"{folder / RAW_FILE} is missing: run the download stage first")


def prepare(cfg: DictConfig) -> tuple[dict[str, Any], dict[str, Any]]:
    """Tokenize, split by source sentence, build the vocabularies and encode into `paths.prepared_dir`."""
    pairs = read_pairs(raw_file(cfg), cfg.data.source.member, progress=True)
    prepared = prepare_from_config(pairs, section(cfg, "data"))
    prepared.save(resolve_path(cfg.paths.prepared_dir))
    facts = prepared.facts
    vocab = {f"vocab_{side}": size for side, size in facts["vocab_size"].items()}
    return facts, {**facts["pairs"], **vocab}


def data_dir(cfg: DictConfig) -> Path:
    return resolve_path(cfg.paths.prepared_dir)


def datamodule(cfg: DictConfig) -> TranslationDataModule:
    from rnnlab.tasks.translate.batches import TranslationDataModule

    return TranslationDataModule(data_dir(cfg), **section(cfg, "data.loader"), seed=cfg.seed)


def decoder_args(cfg: DictConfig, model_cfg: dict[str, Any]) -> dict[str, Any]:
    """The decoder of a model: the encoder's cell unless `task.decoder.cell` names one, its sizes, and the
    model's attention."""
    decoder = section(cfg, "task.decoder")
    return {
        "cell": decoder["cell"] or model_cfg["cell"],
        "bidirectional": decoder["bidirectional"],
        "hidden_size": model_cfg["hidden_size"],
        "embedding_dim": model_cfg["embedding_dim"],
        "dropout": decoder["dropout"],
        "attention": model_cfg["attention"],
    }


def build_model(cfg: DictConfig, model_cfg: dict[str, Any], data: TranslationDataModule) -> Built:
    from rnnlab.models.build import encoder_args
    from rnnlab.tasks.translate.seq2seq import Seq2SeqTranslator

    ids = data.tgt_vocab
    model = Seq2SeqTranslator(
        data.src_vocab_size,
        data.tgt_vocab_size,
        encoder_args(model_cfg),
        decoder_args(cfg, model_cfg),
        teacher_forcing=cfg.task.teacher_forcing,
        label_smoothing=cfg.task.label_smoothing,
        **optim_args(cfg),
        pad_id=ids.PAD,
        bos_id=ids.BOS,
        oov_id=ids.OOV,
        eos_id=ids.EOS,
    )
    facts = {
        "src_vocab_size": data.src_vocab_size,
        "tgt_vocab_size": data.tgt_vocab_size,
        "attention": model_cfg["attention"],
        "decoder_cell": decoder_args(cfg, model_cfg)["cell"],
    }
    return Built(model, facts)


def callbacks(
    cfg: DictConfig, model_cfg: dict[str, Any], data: TranslationDataModule, diagnostics_dir: Path
) -> list:
    from rnnlab.tasks.translate.samples import TranslationSamples

    return [TranslationSamples(data, cfg.task.samples, cfg.eval.max_len)]


def artifacts(cfg: DictConfig) -> list[Path]:
    return [data_dir(cfg) / vocab_file(side) for side in ("src", "tgt")]


def load_model(checkpoint: Path) -> Seq2SeqTranslator:
    from rnnlab.tasks.translate.seq2seq import Seq2SeqTranslator

    return Seq2SeqTranslator.load_from_checkpoint(checkpoint, map_location="cpu")


def check_compatible(model: Seq2SeqTranslator, data: TranslationDataModule, name: str) -> None:
    found = (model.hparams.src_vocab_size, model.hparams.tgt_vocab_size)
    if found != (data.src_vocab_size, data.tgt_vocab_size):
        raise LayoutError(
            f"the {name} checkpoint has vocabularies of {found[0]}/{found[1]} words, the prepared data "
            f"{data.src_vocab_size}/{data.tgt_vocab_size}: run `train@{name}` again"
        )


def evaluate(
    cfg: DictConfig, name: str, model: Seq2SeqTranslator, data: TranslationDataModule, folder: Path
) -> Evaluated:
    """BLEU and chrF on val and test, test BLEU by source length (plots/bleu_by_length.png), translations.tsv
    (test) and attention heat maps of `eval.heatmaps` test sentences from the shortest source length to the
    longest (plots/attention_<i>.png).
    Casing and languages: the prepared data's."""
    import pandas as pd

    from rnnlab.plots import evenly_spaced
    from rnnlab.tasks.translate.figures import attention_heatmap, bleu_length_bars
    from rnnlab.tasks.translate.scoring import bleu_by_length, corpus_scores, decode, mlflow_metrics
    from rnnlab.tasks.translate.search import Decoding

    check_compatible(model, data, name)
    decoding = Decoding(cfg.eval.beam_size, cfg.eval.length_penalty, cfg.eval.max_len)
    settings = data.data.settings
    lowercase, target = bool(settings["lowercase"]), settings["languages"]["tgt"]
    val = decode(model, data, "val", decoding, target)
    test = decode(model, data, "test", decoding, target, keep_attention=cfg.eval.heatmaps > 0)
    scores = corpus_scores(test.hypotheses, test.references, lowercase)
    val_scores = corpus_scores(val.hypotheses, val.references, lowercase)
    report = {
        **scores,
        "val_bleu": val_scores["bleu"],
        "val_chrf": val_scores["chrf"],
        "decoding": {"beam_size": decoding.beam_size, "length_penalty": decoding.length_penalty},
        "length_buckets": bleu_by_length(test, list(cfg.eval.length_buckets), lowercase),
    }
    write_json(folder / "metrics.json", report)
    rows = {"source": test.sources, "reference": test.references, "translation": test.hypotheses}
    with atomic_file(folder / "translations.tsv", encoding="utf-8") as handle:
        pd.DataFrame(rows).to_csv(handle, sep="\t", index=False)
    (folder / "plots").mkdir()
    buckets = pd.DataFrame({b: [f["bleu"]] for b, f in report["length_buckets"].items()}, index=[name])
    bleu_length_bars(buckets, folder / "plots" / "bleu_by_length.png")
    heatmaps = [test.attention[i] for i in evenly_spaced(len(test.attention), cfg.eval.heatmaps)]
    for i, (source, output, weights) in enumerate(heatmaps):
        title = f"{name}: a test sentence of {len(source)} words"
        attention_heatmap(weights, source, output, folder / "plots" / f"attention_{i}.png", title)
    shown = {"bleu": scores["bleu"], "chrf": scores["chrf"], "val_bleu": val_scores["bleu"]}
    return Evaluated(report, mlflow_metrics(report), {k: f"{v:.2f}" for k, v in shown.items()})


def compare_plots(table: pd.DataFrame, folder: Path) -> None:
    """Test BLEU per model, and test BLEU by source length per model (attention against none)."""
    from rnnlab.comparison import length_buckets
    from rnnlab.tasks.translate.figures import bleu_bars, bleu_length_bars

    bleu_bars(table, folder / "test_bleu.png")
    bleu_length_bars(length_buckets(table, COMPARE), folder / "bleu_by_length.png")


export, registry_name, register = refused_deployment("translate", NOT_DEPLOYED)
