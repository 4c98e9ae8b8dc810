"""From raw sentence pairs to `PreparedTranslation`: sample, tokenize, split by source, filter, build the
vocabularies on train, encode.

Order of the steps, each counted in the facts:

1. `max_pairs`: a seeded sample of the pairs (smoke runs), kept in file order.
2. Pairs with a side that has no token are dropped (`dropped.empty`).
3. The split groups pairs by their tokenized source sentence (`split.grouped_split`): no source sentence of
   val or test, up to the tokenizer's normalisation and lower-casing, appears in train.
4. `max_len` drops the *training* pairs with more than `max_len` tokens on either side
   (`dropped.too_long`); val and test keep every pair, so scores cover the whole held-out set, long
   sentences included.
5. One vocabulary per language from the training pairs only; val and test words unseen in train are OOV.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from rnnlab.errors import ConfigError
from rnnlab.rules import choice, integer, nullable, text
from rnnlab.tasks.translate.pairs import Pairs
from rnnlab.tasks.translate.prepared import SIDES, TEXT_SPLITS, EncodedPairs, PreparedTranslation
from rnnlab.tasks.translate.split import SPLITS, grouped_split, sample_rows
from rnnlab.tasks.translate.text import LANGUAGES, check_language, tokenize_all
from rnnlab.tasks.translate.vocab import TranslationVocabulary, token_lists

Tokens = list[list[str]]
DATA_RULES = {  # rnnlab.validation rules for the data keys of conf/data/fraeng.yaml that other data sets lack
    "data.source.member": text(),
    "data.languages.src": choice(LANGUAGES),
    "data.languages.tgt": choice(LANGUAGES),
    "data.max_len": nullable(integer(1), "no limit"),
    "data.max_pairs": nullable(integer(1), "all pairs"),
    "data.vocab.max_size": nullable(integer(len(TranslationVocabulary.SPECIALS) + 1), "no limit"),
}


def prepare_from_config(pairs: Pairs, data_cfg: Mapping, progress: bool = True) -> PreparedTranslation:
    """`prepare_pairs` with the settings of a `data` config section (conf/data/fraeng.yaml's layout)."""
    split, vocab = data_cfg["split"], data_cfg["vocab"]
    return prepare_pairs(
        pairs,
        src_lang=data_cfg["languages"]["src"],
        tgt_lang=data_cfg["languages"]["tgt"],
        lowercase=data_cfg["tokenizer"]["lowercase"],
        val_fraction=split["val_fraction"],
        test_fraction=split["test_fraction"],
        seed=split["seed"],
        max_len=data_cfg["max_len"],
        max_pairs=data_cfg["max_pairs"],
        vocab_max_size=vocab["max_size"],
        vocab_min_freq=vocab["min_freq"],
        progress=progress,
    )


def prepare_pairs(
    pairs: Pairs,
    *,
    src_lang: str = "en",
    tgt_lang: str = "fr",
    lowercase: bool = True,
    val_fraction: float = 0.05,
    test_fraction: float = 0.1,
    seed: int = 42,
    max_len: int | None = 50,
    max_pairs: int | None = None,
    vocab_max_size: int | None = None,
    vocab_min_freq: int = 1,
    progress: bool = False,
) -> PreparedTranslation:
    """Prepare `pairs` as the module docstring describes; `seed` drives both the sample and the split."""
    check_language(src_lang, "data.languages.src")
    check_language(tgt_lang, "data.languages.tgt")
    if not isinstance(lowercase, bool):
        raise ConfigError(f"data.tokenizer.lowercase must be true or false; got {lowercase!r}")
    if max_len is not None and (isinstance(max_len, bool) or not isinstance(max_len, int) or max_len < 1):
        raise ConfigError(
            f"data.max_len is {max_len!r}; allowed: a positive integer (tokens per side), or null."
        )
    rows = sample_rows(len(pairs), max_pairs, seed)
    raw = {"src": [pairs.src[i] for i in rows], "tgt": [pairs.tgt[i] for i in rows]}
    tokens = {
        side: tokenize_all(raw[side], lang, lowercase, progress)
        for side, lang in (("src", src_lang), ("tgt", tgt_lang))
    }
    kept = [i for i in range(len(rows)) if tokens["src"][i] and tokens["tgt"][i]]
    group = [" ".join(sentence) for sentence in tokens["src"]]  # a pair's group: its tokenized source
    chosen = grouped_split([group[i] for i in kept], val_fraction, test_fraction, seed)
    split_rows = {name: [kept[j] for j in chosen[name]] for name in SPLITS}
    train_rows = [i for i in split_rows["train"] if _fits(tokens, i, max_len)]
    if not train_rows:
        raise ConfigError(f"data.max_len={max_len} leaves no training pair: raise it (or set it to null).")
    dropped = {
        "max_pairs": len(pairs) - len(rows),
        "empty": len(rows) - len(kept),
        "too_long": len(split_rows["train"]) - len(train_rows),
    }
    split_rows["train"] = train_rows
    vocabs = {
        side: TranslationVocabulary.from_sentences(
            [tokens[side][i] for i in train_rows], vocab_max_size, vocab_min_freq
        )
        for side in SIDES
    }
    encoded = {name: _encode(tokens, split_rows[name], vocabs) for name in SPLITS}
    texts = {
        name: ([raw["src"][i] for i in split_rows[name]], [raw["tgt"][i] for i in split_rows[name]])
        for name in TEXT_SPLITS
    }
    facts = _facts(encoded, {name: {group[i] for i in split_rows[name]} for name in SPLITS}, dropped, vocabs)
    settings = {"languages": {"src": src_lang, "tgt": tgt_lang}, "lowercase": lowercase, "max_len": max_len}
    return PreparedTranslation(vocabs["src"], vocabs["tgt"], encoded, texts, settings, facts)


def _facts(
    encoded: Mapping[str, EncodedPairs],
    sources: Mapping[str, set[str]],
    dropped: dict[str, int],
    vocabs: Mapping[str, TranslationVocabulary],
) -> dict[str, Any]:
    """Pairs, distinct source sentences and tokens per split, dropped pairs, vocabulary sizes, OOV rates."""
    return {
        "pairs": {name: len(encoded[name]) for name in SPLITS},
        "source_sentences": {name: len(sources[name]) for name in SPLITS},
        "dropped": dropped,
        "tokens": {
            name: {side: len(getattr(encoded[name], f"{side}_ids")) for side in SIDES} for name in SPLITS
        },
        "vocab_size": {side: len(vocabs[side]) for side in SIDES},
        "oov_rate": {
            name: {
                side: TranslationVocabulary.oov_share(getattr(encoded[name], f"{side}_ids")) for side in SIDES
            }
            for name in TEXT_SPLITS
        },
    }


def _fits(tokens: Mapping[str, Tokens], row: int, max_len: int | None) -> bool:
    return max_len is None or (len(tokens["src"][row]) <= max_len and len(tokens["tgt"][row]) <= max_len)


def _encode(
    tokens: Mapping[str, Tokens], rows: Sequence[int], vocabs: Mapping[str, TranslationVocabulary]
) -> EncodedPairs:
    arrays: dict[str, Any] = {}
    for side in SIDES:
        ids, offsets = vocabs[side].encode(token_lists([tokens[side][i] for i in rows]))
        arrays[f"{side}_ids"], arrays[f"{side}_offsets"] = ids, offsets.astype(np.int64, copy=False)
    return EncodedPairs(**arrays)
