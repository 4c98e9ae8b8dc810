"""The prepared translation data on disk: two vocabularies, the encoded splits, the raw evaluation sentences.

Folder layout (`PreparedTranslation.save`, replaced atomically):

    meta.json                        format, languages, lowercase, max_len, facts
    vocab.src.json  vocab.tgt.json   one TranslationVocabulary per side (built on train)
    <split>.src.ids.npy              int32: the source ids of every pair, concatenated (no <bos>/<eos>)
    <split>.src.offsets.npy          int64, pairs + 1: pair i is ids[offsets[i]:offsets[i + 1]]
    <split>.tgt.ids.npy  <split>.tgt.offsets.npy   the same for the targets
    val.src.txt  val.ref.txt  test.src.txt  test.ref.txt   the raw sentences, one pair a line, in row order

for <split> in train, val, test. The arrays load memory-mapped.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from rnnlab.errors import LayoutError
from rnnlab.io import atomic_dir, atomic_file, read_json, write_json
from rnnlab.tasks.translate.split import SPLITS
from rnnlab.tasks.translate.vocab import TranslationVocabulary

FORMAT = "rnnlab-translation/1"
META_FILE = "meta.json"
SIDES = ("src", "tgt")
TEXT_SPLITS = ("val", "test")  # the splits whose raw sentences are kept (BLEU against raw references)


def vocab_file(side: str) -> str:
    return f"vocab.{side}.json"


@dataclass(frozen=True)
class EncodedPairs:
    """The pairs of one split as flat id arrays with offsets (see the module docstring)."""

    src_ids: np.ndarray
    src_offsets: np.ndarray
    tgt_ids: np.ndarray
    tgt_offsets: np.ndarray

    def __post_init__(self) -> None:
        if len(self.src_offsets) != len(self.tgt_offsets):
            raise ValueError(f"{len(self.src_offsets) - 1} sources but {len(self.tgt_offsets) - 1} targets")

    def __len__(self) -> int:
        return len(self.src_offsets) - 1

    @property
    def src_lengths(self) -> np.ndarray:
        return np.diff(self.src_offsets)

    @property
    def tgt_lengths(self) -> np.ndarray:
        return np.diff(self.tgt_offsets)

    def source(self, row: int) -> np.ndarray:
        return self.src_ids[self.src_offsets[row] : self.src_offsets[row + 1]]

    def target(self, row: int) -> np.ndarray:
        return self.tgt_ids[self.tgt_offsets[row] : self.tgt_offsets[row + 1]]


@dataclass(frozen=True)
class PreparedTranslation:
    """Everything the datamodule and the evaluation read. `texts[split]` = (raw sources, raw references)
    of val and test, row-aligned with `splits[split]`; `settings` holds languages, lowercase and max_len."""

    src_vocab: TranslationVocabulary
    tgt_vocab: TranslationVocabulary
    splits: dict[str, EncodedPairs]
    texts: dict[str, tuple[list[str], list[str]]]
    settings: dict[str, Any]
    facts: dict[str, Any]

    def vocab(self, side: str) -> TranslationVocabulary:
        return self.src_vocab if side == "src" else self.tgt_vocab

    def save(self, folder: str | os.PathLike) -> None:
        """Write the folder layout of the module docstring into `folder`, replacing it atomically."""
        with atomic_dir(folder) as out:
            for side in SIDES:
                self.vocab(side).save(out / vocab_file(side))
            for split, pairs in self.splits.items():
                for side in SIDES:
                    np.save(out / f"{split}.{side}.ids.npy", getattr(pairs, f"{side}_ids"))
                    np.save(out / f"{split}.{side}.offsets.npy", getattr(pairs, f"{side}_offsets"))
            for split, (sources, references) in self.texts.items():
                _write_lines(out / f"{split}.src.txt", sources)
                _write_lines(out / f"{split}.ref.txt", references)
            write_json(out / META_FILE, {"format": FORMAT, **self.settings, "facts": self.facts})

    @classmethod
    def load(cls, folder: str | os.PathLike) -> PreparedTranslation:
        """Read a folder written by `save` (id arrays memory-mapped), checking that its parts agree."""
        folder = Path(folder)
        names = [META_FILE, *(vocab_file(side) for side in SIDES)]
        names += [
            f"{split}.{side}.{kind}.npy" for split in SPLITS for side in SIDES for kind in ("ids", "offsets")
        ]
        names += [f"{split}.{kind}.txt" for split in TEXT_SPLITS for kind in ("src", "ref")]
        missing = [name for name in names if not (folder / name).is_file()]
        if missing:
            raise LayoutError(
                f"{folder} lacks {', '.join(missing)}: it is not prepared translation data "
                "(run the prepare stage with task=translate)."
            )
        meta = read_json(folder / META_FILE)
        if meta.get("format") != FORMAT:
            raise LayoutError(f"{folder / META_FILE} is not prepared translation data (format {FORMAT!r}).")
        splits = {split: _load_split(folder, split, meta["facts"]["pairs"][split]) for split in SPLITS}
        texts = {}
        for split in TEXT_SPLITS:
            sources, references = (_read_lines(folder / f"{split}.{kind}.txt") for kind in ("src", "ref"))
            if not len(sources) == len(references) == len(splits[split]):
                raise LayoutError(
                    f"{folder}: {split}.src.txt / {split}.ref.txt do not have one line per pair "
                    f"of the split ({len(splits[split])}): the folder is damaged; prepare again."
                )
            texts[split] = (sources, references)
        settings = {key: value for key, value in meta.items() if key not in ("format", "facts")}
        return cls(
            TranslationVocabulary.load(folder / vocab_file("src")),
            TranslationVocabulary.load(folder / vocab_file("tgt")),
            splits,
            texts,
            settings,
            meta["facts"],
        )


def _load_split(folder: Path, split: str, pairs: int) -> EncodedPairs:
    arrays = {
        f"{side}_{kind}": np.load(folder / f"{split}.{side}.{kind}.npy", mmap_mode="r")
        for side in SIDES
        for kind in ("ids", "offsets")
    }
    for side in SIDES:
        ids, offsets = arrays[f"{side}_ids"], arrays[f"{side}_offsets"]
        if len(offsets) != pairs + 1 or offsets[-1] != len(ids):
            raise LayoutError(
                f"{folder}: the {split} {side} arrays do not match {META_FILE} ({pairs} pairs): "
                "the folder is damaged; prepare again."
            )
    return EncodedPairs(**arrays)


def _write_lines(path: Path, lines: list[str]) -> None:
    with atomic_file(path, "w", encoding="utf-8", newline="\n") as handle:
        handle.writelines(f"{line}\n" for line in lines)


def _read_lines(path: Path) -> list[str]:
    with open(path, encoding="utf-8", newline="\n") as handle:
        return [line[:-1] for line in handle]
