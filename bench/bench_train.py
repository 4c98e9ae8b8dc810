"""Benchmark CPU training throughput: Lightning vs a bare loop; padded vs bucketed vs packed batches.

    python bench/bench_train.py --encoded data/encoded/imdb [--batches 50 --repeats 5 --cells lstm,bilstm]

Every run trains a fresh emb-128/hidden-128 model (same seed, the project's 0.2 embedding and head dropout)
with AdamW (lr 2e-3, wd 1e-2), cross-entropy and ``clip_grad_norm_(1.0)`` on the first ``--batches``
batches of 64 of a fresh ``train_dataloader()``, so every run sees the same batches. Each side gets an
untimed warm-up run; rounds rotate the order of the sides (ABBA... for two); medians over rounds are shown.

1. lightning vs bare, on the project's default (bucketed) batches:
   - lightning: ``SequenceClassifier`` (scheduler ``none``: plateau needs validation) fitted by a Trainer
     from ``build_trainer`` with ``build_callbacks`` less ``ModelCheckpoint`` (checkpointing off), a
     CSVLogger in a temp dir, ``gradient_clip_val=1.0`` (norm), ``max_epochs=1, limit_train_batches=N,
     limit_val_batches=0``, no progress bar. Timed from ``on_train_epoch_start`` to the last
     ``on_train_batch_end`` (the window of the project's ``train/seq_per_s``): Trainer setup and the
     epoch-end metric compute are left out; the whole ``fit()`` is shown for reference.
   - bare: the same model class and loader; per batch ``zero_grad``, the module's own ``training_step``
     (forward, loss, the torchmetrics acc/F1/AUROC update), ``backward``, its ``on_before_optimizer_step``
     (the grad-norm computation), ``clip_grad_norm_``, ``step``; timed around the loop, batch fetching
     included. With no Trainer attached ``self.log`` returns after checking its arguments, so lightning/bare
     measures the framework alone: loop, hooks, logging bookkeeping, callbacks, logger.
   The ratio is the median of the per-round ratios (a round's two runs are adjacent in time, which cancels
   most drift on a shared machine); the script exits 1 when it is under ``--min-ratio`` (0.97).
2. padded vs bucketed vs packed, bare loop (forward, loss, backward, clip, step; no metrics):
   - padded: ``SequenceDataModule(bucket=False)``: random batches trimmed to their longest review, which
     for random batches is (nearly) always max_len; the project's ``RecurrentEncoder``;
   - bucketed: ``bucket=True`` (``BucketBatchSampler`` + ``TrimCollate``), the project's encoder; batches
     come from pools of 50 batches, so use a multiple of 50 for ``--batches``;
   - packed: the padded batches through a bench-local embedding + ``nn.LSTM`` (``nn.GRU``/``nn.RNN`` for
     those cells; same sizes, parameter count and function as the project's model) over
     ``pack_padded_sequence(..., enforce_sorted=False)``, the head reading the final state(s).

Run it on an idle machine: with torch's default intra-op threads (one per core), other work on a 2-core
machine slows every side by up to ~50x; ``--threads 1`` is far less sensitive to that.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import statistics
import sys
import tempfile
import time
import warnings
from pathlib import Path

import lightning as L
import torch
import torchmetrics
from lightning.pytorch.callbacks import ModelCheckpoint
from lightning.pytorch.loggers import CSVLogger
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence

from machine import cpu_model
from rnnlab.models.cells import CELLS
from rnnlab.tasks.classification.classifier import SequenceClassifier
from rnnlab.tasks.classification.sequence_data import SequenceDataModule
from rnnlab.training import build_callbacks, build_trainer

BATCH_SIZE, SIZE, DROPOUT, CLIP = 64, 128, 0.2, 1.0
TRAINER = {
    "accelerator": "cpu",
    "devices": 1,
    "max_epochs": 1,
    "limit_val_batches": 0,
    "num_sanity_val_steps": 0,
    "gradient_clip_val": CLIP,
    "gradient_clip_algorithm": "norm",
    "precision": "32-true",
    "log_every_n_steps": 50,
    "deterministic": False,
    "enable_checkpointing": False,
    "enable_model_summary": False,
    "enable_progress_bar": False,
}
BATCHINGS = ("padded", "bucketed", "packed")


def parse_cell(name: str) -> tuple[str, bool]:
    """`lstm` -> ("lstm", False), `bigru` -> ("gru", True)."""
    cell, bidirectional = (name[2:], True) if name.startswith("bi") else (name, False)
    if cell not in CELLS:
        raise SystemExit(f"--cells: unknown cell {name!r}; use {', '.join(CELLS)}, optionally prefixed by bi")
    return cell, bidirectional


def classifier(name: str, data: SequenceDataModule, seed: int) -> SequenceClassifier:
    cell, bidirectional = parse_cell(name)
    torch.manual_seed(seed)
    encoder = {
        "cell": cell,
        "bidirectional": bidirectional,
        "hidden_size": SIZE,
        "embedding_dim": SIZE,
        "embedding_dropout": DROPOUT,
    }
    return SequenceClassifier(
        data.vocab_size, data.num_classes, encoder, scheduler="none", head_dropout=DROPOUT
    )


class PackedClassifier(nn.Module):
    """Embedding -> one (bi)directional cell over a packed batch -> linear head on the final state(s)."""

    def __init__(self, name: str, data: SequenceDataModule, seed: int) -> None:
        super().__init__()
        cell, bidirectional = parse_cell(name)
        torch.manual_seed(seed)
        self.embedding = nn.Embedding(data.vocab_size, SIZE, padding_idx=0)
        self.rnn = CELLS[cell].module(SIZE, SIZE, batch_first=True, bidirectional=bidirectional)
        self.dropout = nn.Dropout(DROPOUT)
        width = SIZE * (2 if bidirectional else 1)
        self.head = nn.Sequential(nn.Dropout(DROPOUT), nn.Linear(width, data.num_classes))

    def forward(self, ids: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        x = self.dropout(self.embedding(ids))
        packed = pack_padded_sequence(x, lengths.clamp(min=1), batch_first=True, enforce_sorted=False)
        _, state = self.rnn(packed)
        state = state[0] if isinstance(state, tuple) else state  # LSTM: (h, c); h is in the batch's order
        return self.head(torch.cat(list(state[-(1 + self.rnn.bidirectional) :]), dim=-1))


def bare_run(model: nn.Module, data: SequenceDataModule, batches: int, module_step: bool) -> tuple:
    """(seconds, sequences) of `batches` training steps; `module_step`: the LightningModule's step code."""
    optimizer = (
        model.configure_optimizers()
        if module_step  # AdamW, as the Trainer gets it
        else torch.optim.AdamW(model.parameters(), lr=2e-3, weight_decay=1e-2)
    )
    model.train()
    iterator, sequences = iter(data.train_dataloader()), 0
    start = time.perf_counter()
    for index, batch in zip(range(batches), iterator, strict=False):
        optimizer.zero_grad(set_to_none=True)
        if module_step:
            loss = model.training_step(batch, index)
        else:
            loss = nn.functional.cross_entropy(model(batch["ids"], batch["lengths"]), batch["labels"])
        loss.backward()
        if module_step:
            model.on_before_optimizer_step(optimizer)
        nn.utils.clip_grad_norm_(model.parameters(), CLIP)
        optimizer.step()
        sequences += len(batch["labels"])
    return time.perf_counter() - start, sequences


class Window(L.Callback):
    """on_train_epoch_start -> the last on_train_batch_end (the window EpochThroughput times)."""

    def on_train_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.start, self.end, self.sequences = time.perf_counter(), 0.0, 0

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:  # noqa: ANN001
        self.sequences += len(batch["labels"])
        self.end = time.perf_counter()


def lightning_run(model: SequenceClassifier, data: SequenceDataModule, batches: int) -> tuple:
    """(training-loop seconds, sequences, whole fit() seconds) for one epoch of `batches` batches."""
    with tempfile.TemporaryDirectory(prefix="bench_train.") as tmp:
        callbacks = [c for c in build_callbacks(Path(tmp), 0, 0) if not isinstance(c, ModelCheckpoint)]
        window = Window()
        config = {**TRAINER, "limit_train_batches": batches}
        trainer = build_trainer(config, [*callbacks, window], CSVLogger(tmp, name="bench"))
        start = time.perf_counter()
        trainer.fit(model, datamodule=data)
        return window.end - window.start, window.sequences, time.perf_counter() - start


def compare(name: str, runs: dict, args: argparse.Namespace) -> dict:
    """Warm each side up, then `--repeats` rounds, the order rotated each round (ABBA... for two sides)."""
    for run in runs.values():
        run(args.warmup)
    seq_s: dict[str, list[float]] = {side: [] for side in runs}
    fit_s: list[float] = []
    for round_ in range(args.repeats):
        order = list(runs)[round_ % len(runs) :] + list(runs)[: round_ % len(runs)]
        for side in order:
            seconds, sequences, *fit = runs[side](args.batches)
            seq_s[side].append(sequences / seconds)
            fit_s += fit
            print(
                f"  {name:<7} round {round_ + 1}/{args.repeats} {side:<9} {seq_s[side][-1]:7.1f} seq/s",
                flush=True,
            )
    result = {"seq_per_s": seq_s, "median": {side: statistics.median(v) for side, v in seq_s.items()}}
    if fit_s:
        ratios = [lit / bare for lit, bare in zip(seq_s["lightning"], seq_s["bare"], strict=True)]
        result.update(ratios=ratios, ratio=statistics.median(ratios), fit_s=fit_s)
    return result


def lightning_vs_bare(name: str, data: SequenceDataModule, args: argparse.Namespace) -> dict:
    return compare(
        name,
        {
            "bare": lambda n: bare_run(classifier(name, data, args.seed), data, n, module_step=True),
            "lightning": lambda n: lightning_run(classifier(name, data, args.seed), data, n),
        },
        args,
    )


def batching(name: str, loaders: dict[str, SequenceDataModule], args: argparse.Namespace) -> dict:
    def run(kind: str, n: int) -> tuple:
        data = loaders["bucketed" if kind == "bucketed" else "padded"]
        model = (PackedClassifier if kind == "packed" else classifier)(name, data, args.seed)
        return bare_run(model, data, n, module_step=False)

    return compare(name, {kind: lambda n, kind=kind: run(kind, n) for kind in BATCHINGS}, args)


def batch_shapes(data: SequenceDataModule, batches: int) -> dict[str, float]:
    """Mean padded width and the share of real tokens over the first `batches` batches (untimed)."""
    widths, real, cells = [], 0, 0
    for _, batch in zip(range(batches), data.train_dataloader(), strict=False):
        widths.append(batch["ids"].shape[1])
        real += int(batch["lengths"].clamp(max=batch["ids"].shape[1]).sum())
        cells += batch["ids"].numel()
    return {"width": statistics.mean(widths), "real": real / cells}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--encoded", type=Path, required=True, help="encoded data folder (meta.json, splits)")
    parser.add_argument("--batches", type=int, default=50, help="training batches per timed run")
    parser.add_argument("--repeats", type=int, default=5, help="timed rounds (median shown)")
    parser.add_argument("--warmup", type=int, default=3, help="batches of the untimed warm-up run per side")
    parser.add_argument("--cells", default="lstm,bilstm", help="comma-separated: rnn|lstm|gru, bi-prefixed")
    parser.add_argument("--parts", default="lightning,batching", help="which parts to run")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, help="torch.set_num_threads (default: torch's own choice)")
    parser.add_argument("--min-ratio", type=float, default=0.97, help="target: lightning/bare seq/s")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args(argv)
    args.cells, args.parts = args.cells.split(","), args.parts.split(",")
    for name in args.cells:
        parse_cell(name)
    if not set(args.parts) <= {"lightning", "batching"} or args.batches < 1 or args.repeats < 1:
        parser.error("--parts takes lightning and/or batching; --batches and --repeats must be >= 1")
    return args


def report(args: argparse.Namespace, results: dict, data: SequenceDataModule, shapes: dict, load: float):
    """Print the figures; True when every lightning/bare ratio meets `--min-ratio`."""
    print(f"\ncommand : {' '.join([Path(sys.executable).name, *sys.argv])}")
    print(f"machine : {os.cpu_count()} CPUs, {cpu_model()}, {platform.platform()}")
    print(f"load    : 1-minute load average {load:.2f} at the start (other work slows every side)")
    print(
        f"versions: Python {platform.python_version()}, torch {torch.__version__} "
        f"(intra-op threads: {torch.get_num_threads()}), lightning {L.__version__}, "
        f"torchmetrics {torchmetrics.__version__}"
    )
    print(
        f"data    : {len(data.splits['train']):,} train reviews, max_len {data.meta['max_len']}, "
        f"batches of {BATCH_SIZE}; {args.batches} batches a run, {args.repeats} rounds, "
        f"warm-up {args.warmup} batches"
    )
    for kind, shape in shapes.items():
        print(f"batches : {kind:<8} mean width {shape['width']:5.1f}, real tokens {shape['real']:.1%}")
    ok = True
    if results["lightning"]:
        print("\n1. lightning vs bare loop (bucketed batches, training loop only; seq/s: median of rounds)")
        print(f"{'cell':<8} {'bare':>8} {'lightning':>10} {'ratio':>6}  {'fit() s':>7}  per-round ratios")
        for name, r in results["lightning"].items():
            ok &= r["ratio"] >= args.min_ratio
            rounds = " ".join(f"{x:.3f}" for x in r["ratios"])
            print(
                f"{name:<8} {r['median']['bare']:>8.1f} {r['median']['lightning']:>10.1f} "
                f"{r['ratio']:>6.3f}  {statistics.median(r['fit_s']):>7.2f}  {rounds}"
            )
        print(
            f"ratio lightning/bare (median of the per-round ratios) >= {args.min_ratio:g}: "
            f"{'PASS' if ok else 'FAIL'}"
        )
    if results["batching"]:
        print("\n2. padded vs bucketed vs packed (bare loop: forward, backward, clip, step; seq/s: median)")
        print(
            f"{'cell':<8} {'padded':>8} {'bucketed':>9} {'packed':>8}  {'bucketed/padded':>15} "
            f"{'packed/padded':>13}"
        )
        for name, r in results["batching"].items():
            m = r["median"]
            print(
                f"{name:<8} {m['padded']:>8.1f} {m['bucketed']:>9.1f} {m['packed']:>8.1f}  "
                f"{m['bucketed'] / m['padded']:>14.2f}x {m['packed'] / m['padded']:>12.2f}x"
            )
    return ok


def main() -> int:
    args = parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    logging.getLogger("lightning.pytorch").setLevel(logging.ERROR)
    warnings.filterwarnings("ignore", message=".*(self.log|num_workers|LearningRate|log_every_n|LeafSpec)")
    load = os.getloadavg()[0]
    loaders = {
        kind: SequenceDataModule(args.encoded, BATCH_SIZE, bucket=kind == "bucketed", seed=args.seed)
        for kind in ("padded", "bucketed")
    }
    for data in loaders.values():
        data.setup()
    results: dict = {"lightning": {}, "batching": {}}
    for name in args.cells:
        if "lightning" in args.parts:
            results["lightning"][name] = lightning_vs_bare(name, loaders["bucketed"], args)
        if "batching" in args.parts:
            results["batching"][name] = batching(name, loaders, args)
    shapes = {kind: batch_shapes(loaders[kind], args.batches) for kind in loaders}
    ok = report(args, results, loaders["bucketed"], shapes, load)
    if args.json:
        figures = {"argv": sys.argv, "load": load, "shapes": shapes, **results}
        args.json.write_text(json.dumps(figures, indent=1), encoding="utf-8")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
