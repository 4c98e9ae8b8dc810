"""Fast tokenization of many texts with Arrow's C++ string kernels (RE2), threaded over chunks.

Rules, applied in this order to every text (a null text counts as an empty one):

1. ``lowercase``: Unicode lower-casing (Arrow's ``utf8_lower``).
2. ``strip_html``: every HTML tag (``<`` + optional ``/`` + a letter, up to the next ``>``), e.g. ``<br />``,
   ``<i>``, ``</i>``, is replaced by one space. A lone ``<`` as in ``a < b`` is kept. Entities (``&amp;``)
   are not decoded.

Word level (``level="word"``) then:

3. A word is a maximal run of Unicode letters, numbers and combining marks (``\\pL \\pN \\pM``), so
   ``café``, ``ünïcode`` and ``2024`` stay whole. An apostrophe (ASCII ``'`` only) between two word
   characters is part of the word: ``didn't``, ``rock'n'roll``, ``o'neill``.
4. Every other non-space character is a token of its own: ``"wow!!"`` -> ``wow ! !``,
   ``10/10`` -> ``10 / 10``, ``'quoted'`` -> ``' quoted '``, ``don_t`` -> ``don _ t``.
5. ``contractions="split"`` then splits Treebank-style clitics off the end of a word, case-insensitively:
   ``n't`` (``didn't`` -> ``did n't``, ``can't`` -> ``ca n't``) and ``'s 're 've 'll 'd 'm``
   (``it's`` -> ``it 's``, ``I'm`` -> ``I 'm``). ``"keep"`` leaves such words whole.
6. Tokens are separated by whitespace (Unicode's, as ``str.isspace``), which is dropped. U+0001 in the
   input counts as whitespace too (it marks protected apostrophes internally).

Character level (``level="char"``): after steps 1-2, every Unicode code point is a token, whitespace and
newlines included (``"a b\\n"`` -> ``a, " ", b, "\\n"``); the split is done on the UTF-8 bytes with numpy.

Empty texts give empty token lists. The result is one ``list<string>`` Arrow array, one list per text,
in input order.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import TypeVar

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from rnnlab.errors import ConfigError

T = TypeVar("T")

LEVELS = ("word", "char")
CONTRACTION_MODES = ("keep", "split")
CHUNKS_PER_THREAD = 4

_MARK = "\x01"  # stands in for a protected (intra-word) apostrophe
_HTML_TAG = r"</?[A-Za-z][^<>]*>"
_INNER_APOSTROPHE = r"([\pL\pN\pM])'([\pL\pN\pM])"
_PROTECTED = "\\1" + _MARK + "\\2"
_LEFT_OVER = r"\x01[\pL\pN\pM]'[\pL\pN\pM]"  # starts with a literal: a fast scan
_WORD_END = r"([^\pL\pN\pM\x01]|$)"
_CLITIC_NT = r"(?i)(n\x01t)" + _WORD_END
_CLITIC_OTHER = r"(?i)(\x01(?:s|re|ve|ll|d|m))" + _WORD_END
_PUNCTUATION = r"[^\pL\pN\pM\s\v\x01]"
# The marker and what Python's str.isspace() calls whitespace beyond ASCII's " \t\n\v\f\r"
_RARE_SPACE = (
    r"[\x01\x{1c}-\x{1f}\x{85}\x{a0}\x{1680}\x{2000}-\x{200a}\x{2028}\x{2029}\x{202f}\x{205f}\x{3000}]"
)


@dataclass(frozen=True)
class TokenizerConfig:
    """How texts become tokens (Hydra group ``data.tokenizer``); see the module docstring for the rules."""

    level: str = "word"
    lowercase: bool = True
    strip_html: bool = True
    contractions: str = "keep"

    def __post_init__(self) -> None:
        _check_choice("level", self.level, LEVELS)
        _check_choice("contractions", self.contractions, CONTRACTION_MODES)
        for key in ("lowercase", "strip_html"):
            if not isinstance(getattr(self, key), bool):
                raise ConfigError(f"data.tokenizer.{key} must be true or false, got {getattr(self, key)!r}")


def _check_choice(key: str, value: object, allowed: tuple[str, ...]) -> None:
    if value not in allowed:
        raise ConfigError(f"data.tokenizer.{key} must be one of {', '.join(allowed)}; got {value!r}")


def tokenize(
    texts: Sequence[str] | pa.Array | pa.ChunkedArray, cfg: TokenizerConfig, threads: int | None = None
) -> pa.ListArray:
    """Tokenize `texts` by `cfg`: one list of string tokens per text, in input order.

    The work is split into contiguous chunks run on `threads` threads (default ``min(2, os.cpu_count())``);
    Arrow's kernels release the GIL, so the threads run in parallel.
    """
    array = as_string_array(texts)
    return map_chunks(array, lambda chunk: _tokenize_chunk(chunk, cfg), threads)


def as_string_array(texts: Sequence[str] | pa.Array | pa.ChunkedArray) -> pa.StringArray:
    """`texts` as one contiguous Arrow ``string`` array with nulls replaced by empty strings."""
    if isinstance(texts, pa.ChunkedArray):
        texts = texts.combine_chunks() if texts.num_chunks else pa.array([], pa.string())
    elif not isinstance(texts, pa.Array):
        texts = pa.array(texts, type=pa.string())
    if not (pa.types.is_string(texts.type) or pa.types.is_large_string(texts.type)):
        raise TypeError(f"texts must be strings, got Arrow type {texts.type}")
    return pc.fill_null(texts.cast(pa.string()), "")


def resolve_threads(threads: int | None) -> int:
    """The thread count to use: `threads`, or ``min(2, os.cpu_count())`` when None."""
    if threads is None:
        return min(2, os.cpu_count() or 1)
    if threads < 1:
        raise ValueError(f"threads must be >= 1, got {threads}")
    return threads


def map_ranges(n: int, func: Callable[[int, int], T], threads: int | None) -> list[T]:
    """``[func(lo, hi), ...]`` over contiguous ranges covering ``0..n``, run on a pool of `threads` threads.

    Each thread gets a few ranges (``CHUNKS_PER_THREAD``) to even out uneven work; results keep range order.
    """
    threads = resolve_threads(threads)
    n_chunks = max(1, min(n, threads * CHUNKS_PER_THREAD) if threads > 1 else 1)
    bounds = np.linspace(0, n, n_chunks + 1).astype(np.int64).tolist()
    ranges = list(zip(bounds[:-1], bounds[1:], strict=True))
    if n_chunks == 1:
        return [func(*ranges[0])]
    with ThreadPoolExecutor(threads) as pool:
        return list(pool.map(lambda r: func(*r), ranges))


def map_chunks(array: pa.Array, func: Callable[[pa.Array], pa.Array], threads: int | None) -> pa.Array:
    """Apply `func` to contiguous slices of `array` on a thread pool; concatenate the results in order."""
    parts = map_ranges(len(array), lambda lo, hi: func(array.slice(lo, hi - lo)), threads)
    return parts[0] if len(parts) == 1 else pa.concat_arrays(parts)


def _tokenize_chunk(texts: pa.StringArray, cfg: TokenizerConfig) -> pa.ListArray:
    if cfg.lowercase:
        texts = pc.utf8_lower(texts)
    if cfg.level == "char":
        if cfg.strip_html:
            texts = pc.replace_substring_regex(texts, _HTML_TAG, " ")
        return _split_chars(texts)
    # One pass blanks the tags, any marker character and the non-ASCII whitespace, so that ASCII whitespace
    # splitting suffices (pyarrow 25's utf8_split_whitespace mishandles trailing runs of whitespace).
    blank = f"{_HTML_TAG}|{_RARE_SPACE}" if cfg.strip_html else _RARE_SPACE
    return _split_words(pc.replace_substring_regex(texts, blank, " "), cfg.contractions == "split")


def _split_words(texts: pa.StringArray, split_contractions: bool) -> pa.ListArray:
    texts = _protect_inner_apostrophes(texts)
    if split_contractions:
        texts = pc.replace_substring_regex(texts, _CLITIC_NT, " \\1\\2")
        texts = pc.replace_substring_regex(texts, _CLITIC_OTHER, " \\1\\2")
    texts = pc.replace_substring_regex(texts, _PUNCTUATION, " \\0 ")
    texts = pc.replace_substring(texts, _MARK, "'")
    return _drop_empty_tokens(pc.ascii_split_whitespace(texts))


def _protect_inner_apostrophes(texts: pa.StringArray) -> pa.StringArray:
    """Replace every apostrophe between two word characters by the marker.

    RE2 has no lookaround, so a match consumes the character after the apostrophe: in ``rock'n'roll`` the
    second apostrophe is left over, always right after a marked one. Only the few texts with such a leftover
    get a second pass.
    """
    texts = pc.replace_substring_regex(texts, _INNER_APOSTROPHE, _PROTECTED)
    left_over = pc.match_substring_regex(texts, _LEFT_OVER)
    if not pc.any(left_over).as_py():
        return texts
    redone = pc.replace_substring_regex(texts.filter(left_over), _INNER_APOSTROPHE, _PROTECTED)
    return pc.replace_with_mask(texts, left_over, redone)


def _drop_empty_tokens(lists: pa.ListArray) -> pa.ListArray:
    """Remove the empty strings that whitespace splitting leaves at the ends of texts (and for empty texts).

    An empty token spans no bytes, so dropping it only drops its entry from the offsets: no string is copied.
    """
    values = lists.flatten()
    ends = np.frombuffer(values.buffers()[1], np.int32)[values.offset : values.offset + len(values) + 1]
    empty = np.flatnonzero(ends[1:] == ends[:-1])
    values = pa.StringArray.from_buffers(
        len(values) - len(empty), pa.py_buffer(np.delete(ends, empty)), values.buffers()[2]
    )
    old_offsets = list_offsets(lists)
    new_offsets = old_offsets - np.searchsorted(empty, old_offsets)  # minus the empty tokens before each
    return pa.ListArray.from_arrays(pa.array(new_offsets.astype(np.int32)), values)


def list_offsets(lists: pa.ListArray) -> np.ndarray:
    """Offsets (int64, starting at 0, length ``len(lists) + 1``) into ``lists.flatten()``; nulls are empty."""
    lengths = pc.fill_null(pc.list_value_length(lists), 0).to_numpy()
    return np.concatenate([[0], np.cumsum(lengths, dtype=np.int64)])


def _split_chars(texts: pa.StringArray) -> pa.ListArray:
    """Every code point is a token: token boundaries are the UTF-8 bytes that start a code point."""
    offsets = np.frombuffer(texts.buffers()[1], np.int32)[texts.offset : texts.offset + len(texts) + 1]
    lo, hi = int(offsets[0]), int(offsets[-1])
    data = texts.buffers()[2].slice(lo, hi - lo) if hi > lo else pa.py_buffer(b"")
    raw = np.frombuffer(data, np.uint8)
    continuation = np.flatnonzero((raw & 0xC0) == 0x80)  # the 2nd..4th bytes of a character: few
    token_offsets = np.delete(np.arange(len(raw) + 1, dtype=np.int32), continuation)
    values = pa.StringArray.from_buffers(len(token_offsets) - 1, pa.py_buffer(token_offsets), data)
    char_counts = pc.utf8_length(texts).to_numpy(zero_copy_only=False)
    list_offs = np.concatenate([[0], np.cumsum(char_counts, dtype=np.int64)]).astype(np.int32)
    return pa.ListArray.from_arrays(pa.array(list_offs), values)
