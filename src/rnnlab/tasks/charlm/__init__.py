"""Character-level language modelling (Tiny Shakespeare): a checksummed text file, a character vocabulary and
a contiguous 90/10 split; `CharLanguageModel` trained with truncated BPTT; validation nats and bits per
character, and samples at a few temperatures."""

from __future__ import annotations

import math
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from omegaconf import DictConfig

from rnnlab.config import resolve_path, section
from rnnlab.errors import LayoutError
from rnnlab.io import atomic_dir, atomic_file, write_json
from rnnlab.rules import integer, items, nullable, number, refused, text
from rnnlab.tasks import Built, Comparison, Evaluated, optim_args, refused_deployment
from rnnlab.tasks.charlm.corpus import KIND, VOCAB_FILE, fetch_corpus, prepare_corpus, read_corpus

if TYPE_CHECKING:  # the functions import what they use: validation and the data stages need no torch
    import pandas as pd

    from rnnlab.tasks.charlm.bptt import CharLMDataModule
    from rnnlab.tasks.charlm.language_model import CharLanguageModel

HAS_TEST = False  # the protocol: a contiguous 90/10 split, scored on validation
DEPLOYS = False  # export and register refuse, naming NOT_DEPLOYED
NOT_DEPLOYED = "`rnnlab generate` samples text from the best checkpoint"
RAW_FILE = "input.txt"
REFERENCE_NATS = 1.47  # nanoGPT's small character transformer on the same split size (README)
COMPARE = Comparison(
    columns={
        "params": ("train", "params"),
        "epochs": ("train", "epochs"),
        "train_seconds": ("train", "train_seconds"),
        "val_nats": ("eval", "nats_per_char"),
        "val_bpc": ("eval", "bits_per_char"),
    },
    rank_by="val_nats",
    higher_is_better=False,
)
COMPARE_HEADER = (
    "Validation loss over the whole validation text (state carried across chunks), in nats and bits per "
    f"character. Reference: a small character transformer (nanoGPT) reaches {REFERENCE_NATS} nats."
)
MONITORS = {"val/loss": "min", "val/bpc": "min"}
SOURCE_KINDS = (KIND,)
RULES = {
    "data.max_chars": nullable(integer(1), "all characters"),
    "data.loader.chunk_len": integer(1),
    "task.samples.prompt": text(),
    "task.samples.length": integer(1),
    "task.samples.temperatures": items(number(0, open_low=True)),
    "eval.temperatures": items(number(0, open_low=True)),
    "eval.sample_length": integer(1),
    "eval.prompt": text(),
}


def relations(cfg: dict[str, Any], key: str, trained: dict[str, Any]) -> Iterator[str]:
    if trained.get("bidirectional"):
        yield refused(f"{key}.bidirectional", True, "false (a language model generates left to right)")


def download(cfg: DictConfig) -> dict[str, Any]:
    """The checksummed text file, copied into `paths.raw_dir` with source.json."""
    path, sha256 = fetch_corpus(
        section(cfg, "data.source"),
        cfg.data.name,
        resolve_path(cfg.paths.downloads_dir),
        download_cfg=section(cfg, "data.download"),
    )
    with atomic_dir(resolve_path(cfg.paths.raw_dir)) as out:
        shutil.copyfile(path, out / RAW_FILE)
        chars = len(read_corpus(out / RAW_FILE))
        write_json(out / "source.json", {"uri": str(path), "sha256": sha256, "chars": chars})
    return {"source": str(path), "chars": chars, "sha256": sha256[:12]}


def prepare(cfg: DictConfig) -> tuple[dict[str, Any], dict[str, Any]]:
    """Character vocabulary and the contiguous split, as id arrays in `paths.prepared_dir`."""
    raw = resolve_path(cfg.paths.raw_dir) / RAW_FILE
    if not raw.is_file():
        raise LayoutError(f"{raw} is missing: run the download stage first")
    prepared = prepare_corpus(read_corpus(raw), cfg.data.split.val_fraction, cfg.data.max_chars)
    prepared.save(resolve_path(cfg.paths.prepared_dir))
    facts = prepared.facts
    return facts, {"vocab": facts["vocab_size"], **facts["chars"]}


def data_dir(cfg: DictConfig) -> Path:
    return resolve_path(cfg.paths.prepared_dir)


def datamodule(cfg: DictConfig) -> CharLMDataModule:
    from rnnlab.tasks.charlm.bptt import CharLMDataModule

    return CharLMDataModule(data_dir(cfg), **section(cfg, "data.loader"))


def build_model(cfg: DictConfig, model_cfg: dict[str, Any], data: CharLMDataModule) -> Built:
    from rnnlab.models.build import encoder_args
    from rnnlab.tasks.charlm.language_model import CharLanguageModel

    model = CharLanguageModel(
        data.vocab_size,
        encoder_args(model_cfg),
        alphabet="".join(data.vocab.chars),
        **optim_args(cfg),
        head_dropout=model_cfg["head_dropout"],
    )
    return Built(model, {"vocab_size": data.vocab_size, "chunk_len": data.chunk_len})


def callbacks(
    cfg: DictConfig, model_cfg: dict[str, Any], data: CharLMDataModule, diagnostics_dir: Path
) -> list:
    from rnnlab.tasks.charlm.samples import TextSamples

    samples = cfg.task.samples
    return [TextSamples(samples.prompt, samples.length, list(samples.temperatures), seed=cfg.seed)]


def artifacts(cfg: DictConfig) -> list[Path]:
    return [data_dir(cfg) / VOCAB_FILE]


def load_model(checkpoint: Path) -> CharLanguageModel:
    from rnnlab.tasks.charlm.language_model import CharLanguageModel

    return CharLanguageModel.load_from_checkpoint(checkpoint, map_location="cpu")


def validation_nats(model: CharLanguageModel, data: CharLMDataModule) -> tuple[float, int]:
    """Mean cross-entropy (nats) over every validation character, the state carried across chunks."""
    import torch

    from rnnlab.models.encoder import detach_state

    model.eval()
    total, chars, state = 0.0, 0, None
    with torch.no_grad():
        for batch in data.val_dataloader():
            logits, state = model.step(batch["inputs"], state)
            state = detach_state(state)
            targets = batch["targets"]
            loss = torch.nn.functional.cross_entropy(logits.flatten(0, 1), targets.flatten(), reduction="sum")
            total, chars = total + float(loss), chars + targets.numel()
    return total / chars, chars


def evaluate(
    cfg: DictConfig, name: str, model: CharLanguageModel, data: CharLMDataModule, folder: Path
) -> Evaluated:
    """Validation nats/bits per character and one sample per temperature (samples.txt)."""
    if model.hparams.vocab_size != data.vocab_size:
        raise LayoutError(
            f"the {name} checkpoint has {model.hparams.vocab_size} characters, the prepared corpus "
            f"{data.vocab_size}: run `train@{name}` again"
        )
    nats, chars = validation_nats(model, data)
    report = {"nats_per_char": nats, "bits_per_char": nats / math.log(2), "chars": chars}
    write_json(folder / "metrics.json", report)
    length, prompt = int(cfg.eval.sample_length), str(cfg.eval.prompt)
    with atomic_file(folder / "samples.txt", encoding="utf-8") as handle:
        for temperature in cfg.eval.temperatures:
            text = model.sample(prompt, length, temperature=float(temperature), seed=cfg.seed)
            handle.write(f"--- {name}, temperature {temperature} ---\n{text}\n\n")
    mlflow = {"val/bpc_best": report["bits_per_char"]}  # nats: the run's val/loss_best already
    return Evaluated(report, mlflow, {"nats": f"{nats:.4f}", "bpc": f"{report['bits_per_char']:.4f}"})


def compare_plots(table: pd.DataFrame, folder: Path) -> None:
    """Validation nats per character per cell, against the character-transformer reference."""
    from rnnlab import plots

    references = {"char transformer (nanoGPT)": REFERENCE_NATS}
    plots.model_bars(
        table["val_nats"],
        references,
        folder / "val_nats.png",
        "nats per character",
        "Validation loss (lower is better)",
    )


export, registry_name, register = refused_deployment("charlm", NOT_DEPLOYED)
