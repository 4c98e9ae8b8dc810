"""Benchmark the pretraining language model's CPU training throughput: adaptive vs full softmax, per cell.

    OMP_NUM_THREADS=1 python bench/bench_pretrain.py --imdb ../shared/data/imdb/aclImdb_v1_text.tar.gz \
        --cells lstm,bilstm --batches 6 --repeats 3 --warmup 1

The stream: IMDB's 25,000 labelled training reviews (an archive or an extracted aclImdb/ folder), tokenized
with the project's default word tokenizer, a vocabulary of `--max-size` (30,000 with the two specials) and
`--min-freq` 2 built on them, each review followed by the end-of-review id, in a seeded order
(rnnlab.pretraining.stream). Per cell (conf/model/<cell>.yaml: sizes and dropouts; `--model` overrides them)
and softmax (adaptive: `--cutoffs` and `--div-value`, by default the model's; full: one linear layer over all
ids, skipped with `--no-full`), a fresh `WordLanguageModel` (same seed) trains on the first `--batches`
batches of `--batch-size` rows x `--chunk-len` tokens in a bare loop: the module's `training_step` (both
directions for a bidirectional cell; the state carried), backward, `clip_grad_norm_(1.0)`, AdamW step. Each
side gets an untimed warm-up run; rounds rotate the sides' order; medians over rounds. Tokens/s counts stream
tokens (a bidirectional cell reads each one twice, once per direction) per wall and per CPU second of the
process (on a shared machine the CPU seconds are the steadier figure); the projected epochs divide by the
latter. torch's flush-denormal flag is left off, as in the project's training."""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import torch
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf

from machine import cpu_model
from rnnlab.data.imdb import read_imdb_archive, read_imdb_folder
from rnnlab.data.tokenize import TokenizerConfig, tokenize
from rnnlab.data.vocab import Vocabulary
from rnnlab.models.build import encoder_args
from rnnlab.pretraining.stream import ReviewStreamData, review_stream
from rnnlab.pretraining.word_lm import DEFAULT_CUTOFFS, DEFAULT_DIV_VALUE, WordLanguageModel

ROOT = Path(__file__).resolve().parents[1]


def imdb_stream(
    path: Path, max_size: int, min_freq: int, cutoffs: tuple[int, ...]
) -> tuple[np.ndarray, int, dict]:
    """The training reviews' stream, the vocabulary size, and facts about both (the share of targets in each
    cluster of `cutoffs`)."""
    read = read_imdb_archive if path.is_file() else read_imdb_folder
    tables, _ = read(path, progress=False)
    tokens = tokenize(tables["train"].column("text"), TokenizerConfig())
    vocab = Vocabulary.build(tokens, max_size=max_size, min_freq=min_freq)
    ids, offsets = vocab.encode(tokens)
    start = time.perf_counter()
    stream = review_stream(ids, offsets, len(vocab), seed=0)
    facts = {
        "reviews": len(offsets) - 1,
        "tokens": len(ids),
        "stream_s": time.perf_counter() - start,
        "clusters": np.bincount(np.searchsorted(cutoffs, stream, side="right")) / len(stream),
        "oov": Vocabulary.oov_share(ids),
    }
    return stream, len(vocab), facts


def model_settings(cell: str, overrides: list[str]) -> tuple[dict, float]:
    """The encoder settings and head dropout of conf/model/<cell>.yaml with Hydra `overrides` (`model.*`)."""
    with initialize_config_dir(str(ROOT / "conf"), version_base="1.3"):
        composed = compose("config", overrides=[f"model={cell}", *overrides])
        model = OmegaConf.to_container(composed.model, resolve=True)
    return encoder_args(model), model["head_dropout"]


def train(lm: WordLanguageModel, batches: list[dict]) -> tuple[float, float, int]:
    """(wall seconds, CPU seconds, stream tokens) of training `lm` on `batches` in a bare loop."""
    optimizer = torch.optim.AdamW(lm.parameters(), lr=2e-3, weight_decay=1e-2)
    lm.train()
    lm.on_train_epoch_start()
    start, cpu = time.perf_counter(), time.process_time()
    for index, batch in enumerate(batches):
        optimizer.zero_grad()
        lm.training_step(batch, index).backward()
        torch.nn.utils.clip_grad_norm_(lm.parameters(), 1.0)
        optimizer.step()
    tokens = sum(batch["targets"].numel() for batch in batches)
    return time.perf_counter() - start, time.process_time() - cpu, tokens


def measure(cell: str, stream: np.ndarray, vocab_size: int, args: argparse.Namespace) -> dict[str, list]:
    """Per softmax, (tokens per wall second, per CPU second) of each of `--repeats` rounds, after one warm-up
    run each."""
    encoder, head_dropout = model_settings(cell, args.model)
    val = stream[: 2 * args.batch_size * args.chunk_len]  # not read: the loaders want one
    data = ReviewStreamData(stream, val, args.batch_size, args.chunk_len, reverse=encoder["bidirectional"])
    loader = iter(data.train_dataloader())
    batches = [next(loader) for _ in range(args.batches)]

    def build(softmax: str) -> WordLanguageModel:
        torch.manual_seed(0)
        cutoffs = args.cutoffs if softmax == "adaptive" else ()
        return WordLanguageModel(vocab_size, encoder, cutoffs, args.div_value, head_dropout=head_dropout)

    def run(softmax: str, count: int) -> tuple[float, float, int]:
        return train(build(softmax), batches[:count])

    built = build("adaptive")
    sizes = f"embedding {built.config.embedding_dim}, hidden {built.config.hidden_size}"
    print(
        f"  {cell:<7} {sizes}, {sum(p.numel() for p in built.parameters()):,} parameters (adaptive softmax)"
    )
    sides = ["adaptive", "full"] if args.full else ["adaptive"]
    for softmax in sides:
        run(softmax, args.warmup)
    rates: dict[str, list] = {softmax: [] for softmax in sides}
    for round_ in range(args.repeats):
        order = sides[round_ % len(sides) :] + sides[: round_ % len(sides)]
        for softmax in order:
            wall, cpu, tokens = run(softmax, args.batches)
            rates[softmax].append((tokens / wall, tokens / cpu))
            print(
                f"  {cell:<7} round {round_ + 1} {softmax:<8} {tokens / wall:8.0f} tokens/s, "
                f"{tokens / cpu:8.0f} per CPU second",
                flush=True,
            )
    return rates


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--imdb", type=Path, required=True, help="IMDB archive or extracted aclImdb/ folder")
    parser.add_argument("--cells", default="lstm,bilstm", help="conf/model files, comma-separated")
    parser.add_argument(
        "--model",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="a Hydra override of the cells' settings, e.g. model.hidden_size=1024 (repeatable)",
    )
    parser.add_argument("--max-size", type=int, default=30000, help="vocabulary size with the two specials")
    parser.add_argument("--min-freq", type=int, default=2)
    parser.add_argument(
        "--cutoffs",
        type=lambda text: tuple(int(c) for c in text.split(",")),
        default=DEFAULT_CUTOFFS,
        help="the adaptive softmax's cutoffs, comma-separated",
    )
    parser.add_argument("--div-value", type=float, default=DEFAULT_DIV_VALUE, help="the adaptive softmax's")
    parser.add_argument(
        "--full", action=argparse.BooleanOptionalAction, default=True, help="measure the full softmax too"
    )
    parser.add_argument("--batch-size", type=int, default=64, help="parallel rows of the stream")
    parser.add_argument("--chunk-len", type=int, default=70, help="truncated-BPTT length")
    parser.add_argument("--batches", type=int, default=20, help="timed batches per run")
    parser.add_argument("--warmup", type=int, default=2, help="batches of the untimed warm-up run")
    parser.add_argument("--repeats", type=int, default=3, help="timed rounds (median shown)")
    parser.add_argument("--threads", type=int, default=1, help="torch threads")
    parser.add_argument("--epoch-tokens", type=float, default=17.5e6, help="tokens of a projected epoch")
    parser.add_argument(
        "--epoch-reviews",
        type=int,
        default=75000,
        help="reviews of the other projected epoch (measured length)",
    )
    return parser.parse_args()


def main() -> int:
    args = parse_args()
    torch.set_num_threads(args.threads)
    warnings.filterwarnings("ignore", message=".*self.log.*")  # no Trainer: self.log only checks
    print(f"command : {' '.join(sys.argv)}")
    print(f"machine : {os.cpu_count()} CPUs, {cpu_model()}, {platform.platform()}")
    print(f"load    : 1-minute load average {os.getloadavg()[0]:.2f} at the start")
    print(
        f"versions: Python {platform.python_version()}, torch {torch.__version__}, {args.threads} thread(s)"
    )
    stream, vocab_size, facts = imdb_stream(args.imdb, args.max_size, args.min_freq, args.cutoffs)
    per_review = facts["tokens"] / facts["reviews"]
    print(f"stream  : {facts['reviews']:,} reviews, {facts['tokens']:,} tokens, {per_review:.1f} a review")
    print(f"          + an end id each; built in {facts['stream_s']:.2f} s; OOV {facts['oov']:.2%} of tokens")
    shares = " / ".join(f"{share:.1%}" for share in facts["clusters"])
    print(f"vocab   : {vocab_size:,} ids + the end id; adaptive clusters {args.cutoffs}: {shares} of targets")
    print(
        f"batches : {args.batch_size} rows x {args.chunk_len} tokens, {args.batches} a run, "
        f"{args.repeats} rounds"
    )
    if args.model:
        print(f"model   : conf/model/<cell>.yaml with {' '.join(args.model)}")
    results = {cell: measure(cell, stream, vocab_size, args) for cell in args.cells.split(",")}
    measured = args.epoch_reviews * (per_review + 1)  # with the end ids
    print(
        f"\nepochs  : A = {args.epoch_tokens / 1e6:.1f} M tokens; B = {args.epoch_reviews:,} reviews of the"
    )
    print(f"          measured {per_review:.1f} tokens + an end id = {measured / 1e6:.1f} M tokens")
    print("cell     softmax     tokens/s  per CPU s  ms/batch  epoch A  epoch B  (medians; epochs at CPU s)")
    for cell, rates in results.items():
        medians = {
            softmax: [statistics.median(r) for r in zip(*values, strict=True)]
            for softmax, values in rates.items()
        }
        for softmax, (wall, cpu) in medians.items():
            ms = args.batch_size * args.chunk_len / cpu * 1000
            a, b = args.epoch_tokens / cpu / 3600, measured / cpu / 3600
            print(f"{cell:<8} {softmax:<9} {wall:>10,.0f} {cpu:>10,.0f}  {ms:8.0f}  {a:5.2f} h  {b:5.2f} h")
        if args.full:
            ratio = medians["adaptive"][1] / medians["full"][1]
            print(f"{cell:<8} adaptive/full {ratio:.1f}x (per CPU second)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
