"""Benchmark the text path (tokenize -> vocabulary -> ids -> padded arrays) against a plain-Python reference.

    python bench/bench_data.py --imdb /tmp/imdb/aclImdb \
        [--max-len 256 --max-size 30000 --min-freq 2 --repeats 3 --threads N]

The 50,000 labelled IMDB reviews are read once (not timed) and handed to fresh worker processes, one per side
and repeat, so each timing and peak-memory figure starts from the same state:

- reference: ``re`` tokenization (lowercase, tags removed, a findall word/punctuation pattern),
  ``collections.Counter`` over the train reviews, a ``most_common`` vocabulary, list-comprehension ids and
  list padding, then one ``np.array``;
- rnnlab: ``tokenize`` + ``Vocabulary.build`` (train) + ``Vocabulary.encode`` (all) + ``pad_and_truncate``.

Both use the same max_size (specials included), min_freq and max_len, and post padding/truncation.
Peak memory is the worker's peak RSS above its RSS after loading the texts (Arrow allocates outside
tracemalloc's view); for rnnlab the Arrow pool's own peak is shown too. Exits 1 when a target is missed.
"""

from __future__ import annotations

import argparse
import json
import os
import pickle
import platform
import re
import resource
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

import numpy as np

from machine import cpu_model

MAX_SECONDS = 8.0
MIN_SPEEDUP = 3.0
MAX_TOKEN_GAP = 0.05  # the two tokenizers may differ by this share of all tokens
SAMPLE = 2000  # reviews tokenized both ways to show where the tokenizers differ
SIDES = ("reference", "rnnlab")

TAG_RE = re.compile(r"<[^>]+>")
TOKEN_RE = re.compile(r"\w+(?:'\w+)*|[^\w\s]")


def load_imdb(root: Path) -> tuple[list[str], int]:
    """All labelled reviews, train first (pos, neg) then test (pos, neg); returns (texts, number of train)."""
    texts, n_train = [], 0
    for split in ("train", "test"):
        for label in ("pos", "neg"):
            folder = root / split / label
            if not folder.is_dir():
                raise SystemExit(f"{folder} not found: --imdb must point at an extracted aclImdb/ folder")
            texts += [path.read_text(encoding="utf-8") for path in sorted(folder.glob("*.txt"))]
        n_train = n_train or len(texts)
    return texts, n_train


def reference_tokenize(text: str) -> list[str]:
    return TOKEN_RE.findall(TAG_RE.sub(" ", text.lower()))


def run_reference(texts: list[str], n_train: int, args: argparse.Namespace) -> tuple[dict, dict]:
    """The tutorial pipeline; returns (stage seconds, facts for the agreement check)."""
    clock = _Clock()
    tokens = [reference_tokenize(text) for text in texts]
    clock.lap("tokenize")
    counter: Counter[str] = Counter()
    for review in tokens[:n_train]:
        counter.update(review)
    kept = [word for word, count in counter.most_common() if count >= args.min_freq][: args.max_size - 2]
    index = {word: i for i, word in enumerate(kept, start=2)}
    clock.lap("vocabulary")
    ids = [[index.get(word, 1) for word in review] for review in tokens]
    clock.lap("encode")
    padded = np.array([seq[: args.max_len] + [0] * (args.max_len - len(seq)) for seq in ids], dtype=np.int32)
    clock.lap("pad")
    return clock.laps, {
        "token_counts": [len(review) for review in tokens],
        "vocab": kept,
        "shape": list(padded.shape),
        "kept": int(np.count_nonzero(padded)),
    }


def run_rnnlab(texts: list[str], n_train: int, args: argparse.Namespace) -> tuple[dict, dict]:
    """rnnlab's path; returns (stage seconds, facts for the agreement check)."""
    from rnnlab.data.encode import pad_and_truncate
    from rnnlab.data.tokenize import TokenizerConfig, tokenize
    from rnnlab.data.vocab import Vocabulary

    clock = _Clock()
    tokens = tokenize(texts, TokenizerConfig(), threads=args.threads)
    clock.lap("tokenize")
    vocab = Vocabulary.build(tokens.slice(0, n_train), args.max_size, args.min_freq, threads=args.threads)
    clock.lap("vocabulary")
    flat, offsets = vocab.encode(tokens, threads=args.threads)
    clock.lap("encode")
    padded, lengths = pad_and_truncate(flat, offsets, args.max_len)
    clock.lap("pad")
    return clock.laps, {
        "token_counts": np.diff(offsets).tolist(),
        "vocab": vocab.tokens[2:],
        "shape": list(padded.shape),
        "kept": int(lengths.sum()),
    }


class _Clock:
    """Stage timer: ``lap(name)`` records the seconds since the previous lap (or since creation)."""

    def __init__(self) -> None:
        self.laps: dict[str, float] = {}
        self._last = time.perf_counter()

    def lap(self, name: str) -> None:
        now = time.perf_counter()
        self.laps[name] = now - self._last
        self._last = now


def worker(args: argparse.Namespace) -> None:
    """One timed run in this fresh process; writes its figures as JSON to ``args.result``."""
    import pyarrow as pa

    import rnnlab.data.encode  # noqa: F401  (imports are not timed: rnnlab's import pulls in pyarrow)

    with open(args.texts, "rb") as handle:
        texts, n_train = pickle.load(handle)
    base_rss = _maxrss_mb()
    base_arrow = pa.total_allocated_bytes()
    laps, facts = (run_reference if args.worker == "reference" else run_rnnlab)(texts, n_train, args)
    arrow_peak = (pa.default_memory_pool().max_memory() - base_arrow) / 2**20
    result = {
        "laps": laps,
        "seconds": sum(laps.values()),
        "rss_mb": _maxrss_mb() - base_rss,
        "arrow_mb": arrow_peak if args.worker == "rnnlab" else None,
        **facts,
    }
    Path(args.result).write_text(json.dumps(result), encoding="utf-8")


def _maxrss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux reports KiB


def run_worker(side: str, texts_path: Path, args: argparse.Namespace, tmp: Path) -> dict:
    """Run one timed `side` in a fresh Python process and return its figures."""
    result = tmp / f"{side}.json"
    command = [sys.executable, __file__, "--worker", side, "--texts", str(texts_path)]
    command += ["--result", str(result)]
    for option in ("max_len", "max_size", "min_freq"):
        command += [f"--{option.replace('_', '-')}", str(getattr(args, option))]
    if args.threads:
        command += ["--threads", str(args.threads)]
    subprocess.run(command, check=True)
    return json.loads(result.read_text(encoding="utf-8"))


def sample_differences(texts: list[str]) -> tuple[float, list, list]:
    """Tokenize a sample both ways: share of identical token lists and the tokens each side has extra."""
    from rnnlab.data.tokenize import TokenizerConfig, tokenize

    sample = texts[:: max(1, len(texts) // SAMPLE)]
    ours = tokenize(sample, TokenizerConfig()).to_pylist()
    theirs = [reference_tokenize(text) for text in sample]
    only_ref, only_rnnlab, same = Counter(), Counter(), 0
    for a, b in zip(theirs, ours, strict=True):
        same += a == b
        only_ref.update(Counter(a) - Counter(b))
        only_rnnlab.update(Counter(b) - Counter(a))
    return same / len(sample), only_ref.most_common(6), only_rnnlab.most_common(6)


def report(
    args: argparse.Namespace, texts: list[str], n_train: int, runs: dict[str, list[dict]], load: float
) -> bool:
    """Print the figures; True when the targets are met and the two sides agree (`load`: at the start)."""
    import pyarrow as pa

    best = {side: min(runs[side], key=lambda r: r["seconds"]) for side in SIDES}
    speedup = best["reference"]["seconds"] / best["rnnlab"]["seconds"]
    print(f"\ncommand : {' '.join([Path(sys.executable).name, *sys.argv])}")
    print(f"machine : {os.cpu_count()} CPUs, {cpu_model()}, {platform.platform()}")
    print(f"load    : 1-minute load average {load:.2f} at the start (other work slows both sides)")
    print(f"versions: Python {platform.python_version()}, pyarrow {pa.__version__}, numpy {np.__version__}")
    chars = sum(map(len, texts)) / 1e6
    print(
        f"data    : {len(texts):,} reviews ({n_train:,} train), {chars:.1f} M characters; "
        f"max_len={args.max_len} max_size={args.max_size} min_freq={args.min_freq}\n"
    )
    print(
        f"{'side':<10} {'best s':>7}  {'runs s':<18} {'tokenize':>8} {'vocab':>6} {'encode':>6} {'pad':>5}"
        f"  {'peak RSS MB':>11} {'arrow MB':>8}"
    )
    for side in SIDES:
        r = best[side]
        all_runs = " ".join(f"{x['seconds']:.2f}" for x in runs[side])
        arrow = f"{max(x['arrow_mb'] for x in runs[side]):.0f}" if r["arrow_mb"] is not None else "-"
        laps = " ".join(
            f"{r['laps'][k]:>{w}.2f}"
            for k, w in (("tokenize", 8), ("vocabulary", 6), ("encode", 6), ("pad", 5))
        )
        print(
            f"{side:<10} {r['seconds']:>7.2f}  {all_runs:<18} {laps}  "
            f"{max(x['rss_mb'] for x in runs[side]):>11.0f} {arrow:>8}"
        )
    print("(stages: the best run; peak MB: the largest of the runs, above the RSS after loading the texts)")
    ours = best["rnnlab"]["seconds"]
    fast = ours <= args.max_seconds and speedup >= args.min_speedup
    print(
        f"\nspeed-up {speedup:.1f}x (target >= {args.min_speedup:g}x); rnnlab {ours:.2f} s "
        f"(target <= {args.max_seconds:g} s): {'PASS' if fast else 'FAIL'}"
    )
    agreed = agreement(texts, best["reference"], best["rnnlab"])
    return fast and agreed


def agreement(texts: list[str], ref: dict, ours: dict) -> bool:
    """Print how far the two sides agree; True when reviews and shapes match and token totals are close."""
    ref_counts, our_counts = np.array(ref["token_counts"]), np.array(ours["token_counts"])
    gap = our_counts.sum() / ref_counts.sum() - 1
    shared = len(set(ref["vocab"]) & set(ours["vocab"])) / max(len(ref["vocab"]), 1)
    same_rows = len(ref_counts) == len(our_counts) == len(texts) and ref["shape"] == ours["shape"]
    ok = same_rows and abs(gap) <= MAX_TOKEN_GAP
    print(f"\nagreement (reference vs rnnlab): {'OK' if ok else 'MISMATCH'}")
    print(
        f"  reviews  {len(ref_counts):,} vs {len(our_counts):,}; padded {ref['shape']} vs {ours['shape']}; "
        f"non-pad ids {ref['kept']:,} vs {ours['kept']:,}"
    )
    print(
        f"  tokens   {ref_counts.sum():,} vs {our_counts.sum():,} ({gap:+.2%}, limit {MAX_TOKEN_GAP:.0%}); "
        f"same token count in {np.mean(ref_counts == our_counts):.1%} of reviews"
    )
    print(f"  vocab    {shared:.1%} of the reference's {len(ref['vocab']):,} kept tokens are in rnnlab's")
    same, only_ref, only_ours = sample_differences(texts)
    print(f"  sample   {same:.1%} of {SAMPLE:,} reviews give identical token lists; most common extra tokens")
    print(f"           reference: {only_ref}")
    print(f"           rnnlab:    {only_ours}")
    return ok


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--imdb", type=Path, help="extracted aclImdb/ folder")
    parser.add_argument("--max-len", type=int, default=256)
    parser.add_argument("--max-size", type=int, default=30000, help="vocabulary size incl. <pad> and <oov>")
    parser.add_argument("--min-freq", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=None, help="rnnlab threads (default: min(2, CPUs))")
    parser.add_argument("--max-seconds", type=float, default=MAX_SECONDS, help="target: rnnlab's best time")
    parser.add_argument("--min-speedup", type=float, default=MIN_SPEEDUP, help="target: speed-up")
    for hidden in ("--worker", "--texts", "--result"):  # set only by the parent for its worker processes
        parser.add_argument(hidden, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if not args.worker and args.imdb is None:
        parser.error("--imdb is required")
    return args


def main() -> int:
    args = parse_args()
    if args.worker:
        worker(args)
        return 0
    load = os.getloadavg()[0]
    texts, n_train = load_imdb(args.imdb)
    runs: dict[str, list[dict]] = {side: [] for side in SIDES}
    with tempfile.TemporaryDirectory(prefix="bench_data.") as tmp:
        texts_path = Path(tmp) / "texts.pickle"
        texts_path.write_bytes(pickle.dumps((texts, n_train), protocol=pickle.HIGHEST_PROTOCOL))
        for repeat in range(1, args.repeats + 1):
            for side in SIDES:
                runs[side].append(run_worker(side, texts_path, args, Path(tmp)))
                print(f"run {repeat}/{args.repeats} {side:<9} {runs[side][-1]['seconds']:.2f} s", flush=True)
    return 0 if report(args, texts, n_train, runs, load) else 1


if __name__ == "__main__":
    sys.exit(main())
