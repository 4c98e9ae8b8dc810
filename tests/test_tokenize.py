"""Word- and character-level tokenization rules (rnnlab.data.tokenize)."""

from __future__ import annotations

import random

import pyarrow as pa
import pytest

from rnnlab.data.tokenize import TokenizerConfig, tokenize
from rnnlab.errors import ConfigError

WORD = TokenizerConfig()
SPLIT = TokenizerConfig(contractions="split")
CHAR = TokenizerConfig(level="char")


def tokens(text: str, cfg: TokenizerConfig = WORD) -> list[str]:
    return tokenize([text], cfg).to_pylist()[0]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Great film.<br /><br />Loved it", ["great", "film", ".", "loved", "it"]),
        ("one<br/>two<BR>three", ["one", "two", "three"]),
        ("<i>Italic</i> and <a href='x.html'>link</a>", ["italic", "and", "link"]),
        ("a < b and c > d", ["a", "<", "b", "and", "c", ">", "d"]),
        ("Wow!!! Really?!", ["wow", "!", "!", "!", "really", "?", "!"]),
        (
            'He said "no", then (quietly) left...',
            ["he", "said", '"', "no", '"', ",", "then", "(", "quietly", ")", "left", ".", ".", "."],
        ),
        ("10/10 and 7.5 stars, $20", ["10", "/", "10", "and", "7", ".", "5", "stars", ",", "$", "20"]),
        ("snake_case", ["snake", "_", "case"]),
        ("Café ÜNÏCODE naïve 東京", ["café", "ünïcode", "naïve", "東京"]),
        ("  padded \t\n text  ", ["padded", "text"]),
        ("no\xa0break\u3000wide\x85next\vline\x1cend", ["no", "break", "wide", "next", "line", "end"]),
    ],
)
def test_word_level_rules(text, expected):
    assert tokens(text) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("didn't", ["didn't"]),
        ("rock'n'roll", ["rock'n'roll"]),
        ("a'b'c'd", ["a'b'c'd"]),
        ("'quoted'", ["'", "quoted", "'"]),
        ("the actors' work", ["the", "actors", "'", "work"]),
        ("It's we're I've you'll he'd I'm", ["it's", "we're", "i've", "you'll", "he'd", "i'm"]),
    ],
)
def test_contractions_keep(text, expected):
    assert tokens(text) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("didn't", ["did", "n't"]),
        ("can't", ["ca", "n't"]),
        ("it's", ["it", "'s"]),
        ("we're I've you'll he'd I'm", ["we", "'re", "i", "'ve", "you", "'ll", "he", "'d", "i", "'m"]),
        ("DIDN'T", ["did", "n't"]),
        ("rock'n'roll o'neill's", ["rock'n'roll", "o'neill", "'s"]),
        ("'quoted' isn't.", ["'", "quoted", "'", "is", "n't", "."]),
    ],
)
def test_contractions_split(text, expected):
    assert tokens(text, SPLIT) == expected


def test_split_keeps_case_without_lowercase():
    cfg = TokenizerConfig(lowercase=False, contractions="split")
    assert tokens("I DIDN'T, It's", cfg) == ["I", "DID", "N'T", ",", "It", "'s"]


def test_lowercase_and_html_stripping_can_be_turned_off():
    cfg = TokenizerConfig(lowercase=False, strip_html=False)
    assert tokens("Hi<br />There", cfg) == ["Hi", "<", "br", "/", ">", "There"]


def test_control_marker_in_input_is_whitespace():
    assert tokens("a\x01b don't") == ["a", "b", "don't"]


def test_empty_and_null_texts_give_empty_lists():
    result = tokenize(["", "   ", None, "<br />", "x"], WORD).to_pylist()
    assert result == [[], [], [], [], ["x"]]
    assert tokenize([], WORD).to_pylist() == [] and tokenize([], CHAR).to_pylist() == []
    assert tokenize(["", "\n"], CHAR).to_pylist() == [[], ["\n"]]


def test_char_level_keeps_every_character():
    assert tokens("Ab c\n\tÉ!", CHAR) == ["a", "b", " ", "c", "\n", "\t", "é", "!"]
    assert tokens("x<br />y", CHAR) == ["x", " ", "y"]
    assert tokens("Ab", TokenizerConfig(level="char", lowercase=False)) == ["A", "b"]
    assert tokens("東京 🎬", CHAR) == ["東", "京", " ", "🎬"]


def test_accepts_arrow_arrays_chunked_and_sliced():
    sliced = pa.array(["skip me", "Keep THIS", "and this"]).slice(1)
    assert tokenize(sliced, WORD).to_pylist() == [["keep", "this"], ["and", "this"]]
    assert tokenize(sliced, CHAR).to_pylist()[1] == list("and this")
    chunked = pa.chunked_array([["a b"], ["c", None]])
    assert tokenize(chunked, WORD).to_pylist() == [["a", "b"], ["c"], []]
    assert tokenize(pa.array(["Big"], pa.large_string()), WORD).to_pylist() == [["big"]]


@pytest.mark.parametrize("cfg", [WORD, SPLIT, CHAR])
def test_order_preserved_across_thread_chunks(cfg):
    words = ["it's", "rock'n'roll", "'quoted'", "a'b'c'd"]  # some chunks need the second apostrophe pass
    texts = [f"Review {i}: {words[i % 4]} number {i}!<br />" if i % 7 else "" for i in range(103)]
    expected = [tokens(text, cfg) for text in texts]
    assert tokenize(texts, cfg, threads=1).to_pylist() == expected
    assert tokenize(texts, cfg, threads=2).to_pylist() == expected
    assert tokenize(texts, cfg, threads=3).to_pylist() == expected


def test_whitespace_runs_match_str_split():
    rng = random.Random(0)
    spaces = [" ", "  ", "\t", "\n", "\r\n", "\v", "\f", "\xa0", "\u3000", "\u2009", "\x85", "\x1f"]
    words = ["alpha", "Beta", "ça", "x", "42", "東京"]
    texts = [
        "".join(rng.choice(spaces) + rng.choice(words) * rng.randint(0, 1) for _ in range(rng.randint(0, 6)))
        + rng.choice(spaces) * rng.randint(0, 3)
        for _ in range(400)
    ]
    expected = [text.lower().split() for text in texts]
    for threads in (1, 2):
        assert tokenize(texts, WORD, threads=threads).to_pylist() == expected


def test_returns_list_of_string():
    result = tokenize(["a b"], WORD)
    assert isinstance(result, pa.ListArray)
    assert result.type == pa.list_(pa.string())
    result.validate(full=True)


@pytest.mark.parametrize(
    ("field", "value", "allowed"),
    [
        ("level", "byte", "word, char"),
        ("contractions", "drop", "keep, split"),
        ("lowercase", "yes", "true or false"),
    ],
)
def test_bad_config_names_key_and_allowed_values(field, value, allowed):
    with pytest.raises(ConfigError, match=f"data.tokenizer.{field}.*{allowed}"):
        TokenizerConfig(**{field: value})


def test_bad_thread_count():
    with pytest.raises(ValueError, match="threads"):
        tokenize(["a"], WORD, threads=0)
