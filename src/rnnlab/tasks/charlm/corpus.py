"""A plain-text corpus for character-level language modelling: fetch, character vocabulary, contiguous split.

`fetch_corpus` resolves `data.source` (kind `text`) with the same overrides as every other data set
(RNNLAB_<NAME>_SOURCE / RNNLAB_<NAME>_SHA256), downloads or checks the file in place and makes sure it is
non-empty UTF-8 text. `prepare_corpus` builds the vocabulary and cuts the text into a train and a validation
stream of character ids; `PreparedCorpus.save` / `load` keep them as .npy arrays beside a JSON vocabulary.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from rnnlab.data.source_file import fetch_source_file
from rnnlab.errors import ConfigError, DataSourceError, LayoutError, RnnlabError
from rnnlab.io import atomic_dir, read_json, write_json

KIND = "text"
VOCAB_FORMAT = "rnnlab-char-vocabulary/1"
CORPUS_FORMAT = "rnnlab-char-corpus/1"
SPLITS = ("train", "val")
VOCAB_FILE = "vocab.json"
META_FILE = "corpus.json"


def fetch_corpus(
    source_cfg: Mapping,
    dataset_name: str,
    downloads_dir: str | os.PathLike,
    environ: Mapping = os.environ,
    *,
    download_cfg: Mapping | None = None,
    progress: bool = True,
) -> tuple[Path, str]:
    """Return the local text file of `data.source` and its sha256, after checking it reads as text.

    A RNNLAB_<NAME>_SOURCE override replaces `uri` and clears the configured sha256 (it belongs to the
    configured file) unless RNNLAB_<NAME>_SHA256 gives one. A URL is downloaded into `downloads_dir`
    (`download_cfg`: retries, timeout_s, chunk_bytes, backoff_s); a path is checked in place.
    """
    path, digest = fetch_source_file(
        source_cfg,
        dataset_name,
        downloads_dir,
        kind=KIND,
        needs="the character corpus",
        what="a text file",
        environ=environ,
        download_cfg=download_cfg,
        progress=progress,
    )
    read_corpus(path)
    return path, digest


def read_corpus(path: str | os.PathLike) -> str:
    """The whole text of `path`; DataSourceError when it is not UTF-8 or holds no characters."""
    data = Path(path).read_bytes()
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise DataSourceError(
            f"{path} is not UTF-8 text (invalid byte at offset {exc.start}); the corpus must be a UTF-8 "
            "text file. Check data.source.uri or the RNNLAB_<DATASET>_SOURCE variable."
        ) from exc
    if not text:
        raise DataSourceError(f"{path} is empty; the corpus needs at least a few characters of text.")
    return text


class CharVocabulary:
    """Characters <-> ids: id i is the i-th distinct character in code-point order. No padding, no unknown id.

    It is built on the whole (used) corpus, before the split, as nanoGPT and char-rnn do. That is not leakage:
    the vocabulary is only the output alphabet, with no counts or order taken from the validation text, and a
    character seen only in validation gets an id that never receives a training signal, so its validation
    loss stays honest (the model has to spend probability on it unaided). Building it on train only would need
    an unknown id that merges such characters and flatters the loss. `PreparedCorpus.facts` reports them.
    """

    def __init__(self, chars: Sequence[str]) -> None:
        chars = list(chars)
        if not chars:
            raise ValueError("a vocabulary needs at least one character")
        if any(not isinstance(c, str) or len(c) != 1 for c in chars):
            raise ValueError("vocabulary entries must be single characters")
        if any(a >= b for a, b in zip(chars, chars[1:], strict=False)):
            raise ValueError("vocabulary characters must be distinct and in code-point order")
        self._chars = chars
        self._codes = np.array([ord(c) for c in chars], dtype=np.uint32)

    @classmethod
    def build(cls, text: str) -> CharVocabulary:
        """The sorted distinct characters of `text`."""
        return cls(sorted(set(text)))

    def __len__(self) -> int:
        return len(self._chars)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, CharVocabulary):
            return NotImplemented
        return self._chars == other._chars

    __hash__ = None

    @property
    def chars(self) -> list[str]:
        """All characters in id order."""
        return list(self._chars)

    def encode(self, text: str) -> np.ndarray:
        """The ids (int64) of `text`'s characters; ConfigError naming any character not in the vocabulary."""
        codes = np.frombuffer(text.encode("utf-32-le", errors="surrogatepass"), dtype=np.uint32)
        ids = np.minimum(np.searchsorted(self._codes, codes), len(self._chars) - 1)
        known = self._codes[ids] == codes
        if not known.all():
            unknown = sorted(set(codes[~known].tolist()))
            listed = ", ".join(f"{chr(c)!r} (U+{c:04X})" for c in unknown)
            raise ConfigError(
                f"The text has {len(unknown)} character(s) the model's vocabulary lacks: {listed}. "
                f"Allowed characters ({len(self)}): {''.join(self._chars)!r}."
            )
        return ids.astype(np.int64)

    def decode(self, ids: Iterable[int]) -> str:
        """The text of `ids` (any iterable of ints: a list, a numpy array, a 1-d tensor)."""
        out = []
        for token_id in ids:
            index = int(token_id)
            if not 0 <= index < len(self._chars):
                raise IndexError(f"character id {index} out of range for a vocabulary of {len(self._chars)}")
            out.append(self._chars[index])
        return "".join(out)

    def save(self, path: str | os.PathLike) -> None:
        """Write the characters as JSON, atomically."""
        write_json(path, {"format": VOCAB_FORMAT, "chars": self._chars})

    @classmethod
    def load(cls, path: str | os.PathLike) -> CharVocabulary:
        """Read a vocabulary written by :meth:`save`."""
        data = read_json(path)
        if not isinstance(data, dict) or data.get("format") != VOCAB_FORMAT:
            raise RnnlabError(f"{path} is not an rnnlab character vocabulary (format {VOCAB_FORMAT!r})")
        return cls(data["chars"])


@dataclass(frozen=True)
class PreparedCorpus:
    """The vocabulary and the contiguous train/validation streams of character ids (int32)."""

    vocab: CharVocabulary
    train: np.ndarray
    val: np.ndarray
    val_only_chars: tuple[str, ...] = ()  # characters of the validation text that train never shows

    @property
    def facts(self) -> dict:
        """Statistics for the prepare stage's metrics."""
        return {
            "chars": {"train": len(self.train), "val": len(self.val)},
            "vocab_size": len(self.vocab),
            "val_only_chars": list(self.val_only_chars),
        }

    def save(self, folder: str | os.PathLike) -> None:
        """Write train.npy, val.npy, vocab.json and corpus.json into `folder`, replacing it atomically."""
        with atomic_dir(folder) as out:
            for split in SPLITS:
                np.save(out / f"{split}.npy", getattr(self, split))
            self.vocab.save(out / VOCAB_FILE)
            write_json(out / META_FILE, {"format": CORPUS_FORMAT, **self.facts})

    @classmethod
    def load(cls, folder: str | os.PathLike) -> PreparedCorpus:
        """Read a folder written by :meth:`save` (arrays memory-mapped)."""
        folder = Path(folder)
        missing = [
            name
            for name in (*(f"{s}.npy" for s in SPLITS), VOCAB_FILE, META_FILE)
            if not (folder / name).is_file()
        ]
        if missing:
            raise LayoutError(
                f"{folder} lacks {', '.join(missing)}: it is not a prepared character corpus "
                "(run the prepare stage with task=charlm)."
            )
        meta = read_json(folder / META_FILE)
        if meta.get("format") != CORPUS_FORMAT:
            raise LayoutError(f"{folder / META_FILE} is not a character corpus (format {CORPUS_FORMAT!r})")
        arrays = {split: np.load(folder / f"{split}.npy", mmap_mode="r") for split in SPLITS}
        for split, array in arrays.items():
            if len(array) != meta["chars"][split]:
                raise LayoutError(
                    f"{folder / f'{split}.npy'} holds {len(array)} characters, {META_FILE} "
                    f"says {meta['chars'][split]}: the folder is damaged; prepare again."
                )
        return cls(
            CharVocabulary.load(folder / VOCAB_FILE),
            arrays["train"],
            arrays["val"],
            tuple(meta["val_only_chars"]),
        )


def prepare_corpus(text: str, val_fraction: float, max_chars: int | None = None) -> PreparedCorpus:
    """Vocabulary and contiguous split of `text[:max_chars]`: the first `int(n * (1 - val_fraction))`
    characters train, the rest validate (as nanoGPT's `int(n * 0.9)`)."""
    if not _is_number(val_fraction, float) or not 0 < val_fraction < 1:
        raise ConfigError(
            f"data.split.val_fraction is {val_fraction!r}; allowed: a number strictly between 0 and 1."
        )
    if max_chars is not None and not (_is_number(max_chars, int) and max_chars >= 1):
        raise ConfigError(f"data.max_chars is {max_chars!r}; allowed: a positive integer, or null (all).")
    text = text[:max_chars]
    n_train = int(len(text) * (1 - val_fraction))
    train_text, val_text = text[:n_train], text[n_train:]
    if min(len(train_text), len(val_text)) < 2:
        raise ConfigError(
            f"The split of {len(text)} characters with data.split.val_fraction={val_fraction} leaves "
            f"{len(train_text)} to train and {len(val_text)} to validate; each needs at least 2. "
            "Raise data.max_chars or move val_fraction away from 0 and 1."
        )
    vocab = CharVocabulary.build(text)
    return PreparedCorpus(
        vocab,
        vocab.encode(train_text).astype(np.int32),
        vocab.encode(val_text).astype(np.int32),
        tuple(sorted(set(val_text) - set(train_text))),
    )


def _is_number(value: object, kind: type) -> bool:
    """True for an int (kind int) or an int or float (kind float), never for a bool."""
    allowed = (int, np.integer) if kind is int else (int, float, np.integer, np.floating)
    return isinstance(value, allowed) and not isinstance(value, bool)
