"""Word tokenization and detokenization of English and French sentences, with the Moses rules (sacremoses).

Moses is the tokenizer of the classic statistical and neural MT pipelines (sacremoses is what fairseq's
`--tokenizer moses` and Hugging Face's XLM and FSMT tokenizers run): punctuation becomes tokens of its own,
numbers such as `3,5` and `3.5` and abbreviations such as `M.` stay whole, and the clitics follow each
language's convention:

- French (`fr`): elisions keep their apostrophe and come off the word that follows: `l'homme` -> `l' homme`,
  likewise `d' j' qu' n' s' t' m' c' jusqu' lorsqu' puisqu'`; hyphenated forms stay whole (`est-ce`,
  `va-t-il`). `aujourd'hui` is kept as one word (Moses alone would cut it into `aujourd' hui`).
- English (`en`): the clitic comes off with its apostrophe: `Tom's` -> `Tom 's`, `you've` -> `you 've`,
  and Moses cuts negations before the apostrophe: `isn't` -> `isn 't`, `can't` -> `can 't`.

Before tokenizing, a sentence is NFC-normalised, typographic apostrophes (U+2019, U+02BC) become `'`, the
French typographic spaces (no-break, narrow no-break, thin) become plain spaces, and zero-width spaces and
soft hyphens are dropped. `lowercase` lower-cases the tokens afterwards (Moses's abbreviation list is
case-sensitive). `detokenize` undoes the tokenization (Moses's detokenizer); it cannot restore case, so
hypotheses of a lower-casing model are scored case-insensitively (sacrebleu's `lowercase=True`).
"""

from __future__ import annotations

import unicodedata
from collections.abc import Iterable, Sequence
from functools import cache

from sacremoses import MosesDetokenizer, MosesTokenizer
from tqdm.auto import tqdm

from rnnlab.errors import ConfigError

LANGUAGES = ("en", "fr")
_TRANSLATE = str.maketrans(
    {
        "\u2019": "'",
        "\u02bc": "'",  # typographic apostrophes
        "\u00a0": " ",
        "\u202f": " ",
        "\u2009": " ",  # no-break, narrow no-break and thin spaces
        "\u200b": None,
        "\u00ad": None,  # zero-width space, soft hyphen
    }
)
_PROTECTED = {"fr": [r"(?i)\baujourd'hui\b"], "en": None}


def check_language(lang: str, key: str = "language") -> str:
    """`lang` when it is a supported language code; ConfigError naming `key` and the allowed values."""
    if lang not in LANGUAGES:
        raise ConfigError(f"{key} is {lang!r}; allowed values: {', '.join(LANGUAGES)}.")
    return lang


def normalize(text: str) -> str:
    """NFC, plain apostrophes and spaces, no zero-width characters (see the module docstring)."""
    return unicodedata.normalize("NFC", text).translate(_TRANSLATE)


def tokenize(text: str, lang: str, lowercase: bool = True) -> list[str]:
    """The word tokens of one sentence in `lang` ('en' or 'fr')."""
    tokens = _tokenizer(check_language(lang)).tokenize(
        normalize(text), escape=False, protected_patterns=_PROTECTED[lang]
    )
    return [token.lower() for token in tokens] if lowercase else tokens


def tokenize_all(
    texts: Sequence[str], lang: str, lowercase: bool = True, progress: bool = False
) -> list[list[str]]:
    """The tokens of every sentence of `texts`, in order; a repeated sentence is tokenized once."""
    cache: dict[str, list[str]] = {}
    out = []
    for text in tqdm(texts, desc=f"tokenize {lang}", unit="sent", disable=not progress, mininterval=1.0):
        tokens = cache.get(text)
        if tokens is None:
            tokens = cache[text] = tokenize(text, lang, lowercase)
        out.append(tokens)
    return out


def detokenize(tokens: Iterable[str], lang: str) -> str:
    """A sentence in normal spelling from word tokens (Moses's detokenizer for `lang`):
    `["l'", "homme", "est", "là", "."]` -> `l'homme est là.`"""
    return _detokenizer(check_language(lang)).detokenize(list(tokens), return_str=True, unescape=False)


@cache
def _tokenizer(lang: str) -> MosesTokenizer:
    return MosesTokenizer(lang=lang)


@cache
def _detokenizer(lang: str) -> MosesDetokenizer:
    return MosesDetokenizer(lang=lang)
