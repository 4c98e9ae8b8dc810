"""What a served classifier accepts as texts: the checks and column rules of the pyfunc and the server.

A list of strings (or a pandas Series, or a table's text column) is accepted; anything that is not a string
raises `RnnlabError` naming its position and type, and so does a blank text where a prediction is asked for.
Nothing here imports torch, MLflow or ONNX Runtime.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence

import pandas as pd

from rnnlab.errors import RnnlabError

TEXT_COLUMN = "text"  # always accepted; a table's own text column (data.source.text_column) as well


def read_csv_table(source: object) -> pd.DataFrame:
    """A CSV of texts with every cell a string and every line a row: an empty cell stays "" (refused where a
    prediction is asked for), and so does a blank line, which pandas would skip, shifting the positions after
    it against the client's lines (a one-column CSV cannot tell an empty cell from a blank line)."""
    return pd.read_csv(source, dtype=str, keep_default_na=False, na_filter=False, skip_blank_lines=False)


def check_texts(texts: object) -> list[str]:
    """`texts` as a list of strings; a single string, a non-sequence or a non-string item is an error."""
    if isinstance(texts, str | bytes) or not isinstance(texts, Iterable):
        raise RnnlabError(f"texts must be a list of strings, got {type(texts).__name__}")
    texts = list(texts)
    for position, text in enumerate(texts):
        if text is None or (isinstance(text, float) and math.isnan(text)):
            raise RnnlabError(f"text at position {position} is missing ({text!r})")
        if not isinstance(text, str):
            shown = repr(text)[:40]
            raise RnnlabError(f"text at position {position} is {type(text).__name__} ({shown}), not a string")
    return texts


def require_texts(texts: object) -> list[str]:
    """`check_texts`, and each text must hold more than whitespace: there is nothing to classify otherwise."""
    texts = check_texts(texts)
    for position, text in enumerate(texts):
        if not text.strip():
            kind = "blank (whitespace only)" if text else "empty"
            raise RnnlabError(f"text at position {position} is {kind}: there is nothing to classify")
    return texts


def accepted_columns(text_column: str | None = None) -> tuple[str, ...]:
    """The column names that hold texts: `text`, and the table's own text column if it has another name."""
    return tuple(dict.fromkeys([TEXT_COLUMN, text_column or TEXT_COLUMN]))


def text_column(columns: Sequence[object], accepted: Sequence[str]) -> object:
    """The one column of `columns` that holds the texts: a name in `accepted`."""
    found = [name for name in accepted if name in columns]
    if len(found) > 1:
        both = " and ".join(map(repr, found))
        raise RnnlabError(f"the input has both {both} columns: send the texts in one")
    if not found:
        shown = ", ".join(map(str, columns)) or "none"
        wanted = " or ".join(map(repr, accepted))
        raise RnnlabError(f"the input has no {wanted} column (columns found: {shown})")
    return found[0]


def input_texts(model_input: object, accepted: Sequence[str] = (TEXT_COLUMN,)) -> object:
    """The texts of a pyfunc input: a list of strings, a pandas Series, or a DataFrame's text column (a name
    in `accepted`). The items are checked where they are scored (`require_texts`)."""
    if isinstance(model_input, pd.DataFrame):
        columns = list(model_input.columns)
        if columns == [0]:  # how MLflow's schema enforcement passes on a list or an unnamed Series
            return model_input[0].tolist()
        return model_input[text_column(columns, accepted)].tolist()
    if isinstance(model_input, pd.Series):
        return model_input.tolist()
    return model_input
