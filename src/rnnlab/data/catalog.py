"""Data sets as config files: `rnnlab data add` writes `conf/data/<name>.yaml` for a labelled table (after
reading it: the columns exist, at least two classes remain), `rnnlab data use` makes it the data set that
every `python pipelines/...`, `dvc exp run` and `dvc repro` composes.

Why the selection is a line of conf/config.yaml and not an override: with DVC's Hydra integration every
`dvc exp run` composes params.yaml afresh from conf/ and that command's `-S` overrides only, so an earlier
`-S data=<name>` is gone at the next `dvc exp run` (`dvc repro` composes nothing: it runs on params.yaml).
"""

from __future__ import annotations

import re
from pathlib import Path

import yaml

from rnnlab.data.download import sha256_file
from rnnlab.data.sources import TABLE_SUFFIXES, read_table_source, resolve_source
from rnnlab.errors import ConfigError
from rnnlab.io import atomic_file

# A data set's name keys its folders, MLflow experiment, run names and registered model (<name>-sentiment).
NAME_PATTERN = r"[a-z0-9][a-z0-9_-]{0,63}"
NAME_ALLOWED = "lower-case letters, digits, '-' and '_', starting with a letter or digit (at most 64)"
SELECTION = re.compile(r"^(\s*-\s*data:\s*)(\S+)(.*)$", re.MULTILINE)  # in conf/config.yaml's defaults


def check_name(name: str) -> str:
    if not re.fullmatch(NAME_PATTERN, name):
        raise ConfigError(f"data set name {name!r} is not allowed; allowed: {NAME_ALLOWED}")
    return name


def data_file(root: Path, name: str) -> Path:
    return root / "conf" / "data" / f"{check_name(name)}.yaml"


def add_table(
    root: Path,
    name: str,
    path: str,
    text_column: str,
    label_column: str,
    *,
    test_path: str | None = None,
    test_fraction: float = 0.2,
    positive_label: str | None = None,
    force: bool = False,
) -> tuple[Path, dict]:
    """Read the table(s), check them as the download stage will, and write `conf/data/<name>.yaml` with the
    files' sha256 (the download stage verifies them). Returns the file and what was read (rows, classes)."""
    target = data_file(root, name)
    if target.exists() and not force:
        raise ConfigError(f"{target} exists: choose another name, or --force to replace it")
    for key, value in (("--path", path), ("--test-path", test_path)):
        if value is not None and not value.endswith(TABLE_SUFFIXES):
            raise ConfigError(f"{key} {value!r}: a table must end with one of {', '.join(TABLE_SUFFIXES)}")
    source = {
        "kind": "table",
        "uri": path,
        "text_column": text_column,
        "label_column": label_column,
        "test_uri": test_path,
        "test_fraction": test_fraction,
    }
    spec = resolve_source(source, name, environ={})
    for file in filter(None, (spec.uri, spec.test_uri)):
        if not Path(file).is_file():
            raise ConfigError(f"no such table: {file}")
    _, info = read_table_source(spec)
    labels = info["label_names"]
    if positive_label is not None and positive_label not in labels:
        known = ", ".join(labels)
        raise ConfigError(f"--positive-label {positive_label!r} is not a label of the table: {known}")
    source.update(
        uri=_shown(spec.uri, root),
        sha256=sha256_file(spec.uri),
        test_uri=spec.test_uri and _shown(spec.test_uri, root),
    )
    config = {"defaults": ["table", "_self_"], "name": name, "source": source}
    config["positive_label"] = positive_label
    counts = {label: sum(split[label] for split in info["label_counts"].values()) for label in labels}
    header = (
        f"# Data set {name!r}, written by `rnnlab data add` ({sum(counts.values())} rows: "
        + ", ".join(f"{label} {count}" for label, count in counts.items())
        + f").\n# Select it with `rnnlab data use {name}`. Settings not given here are those of table.yaml.\n"
    )
    with atomic_file(target, encoding="utf-8") as handle:
        handle.write(header + yaml.safe_dump(config, sort_keys=False, allow_unicode=True))
    return target, {"rows": info["reviews"], "classes": counts, "dropped": info["dropped_rows"]}


def _shown(path: str, root: Path) -> str:
    """A table inside the project relative to its root (the stages run there), so that a clone finds it;
    one outside as an absolute path."""
    resolved, root = Path(path).resolve(), root.resolve()
    return str(resolved.relative_to(root)) if resolved.is_relative_to(root) else str(resolved)


def selected(root: Path) -> str:
    """The data set conf/config.yaml selects."""
    match = SELECTION.search((root / "conf" / "config.yaml").read_text(encoding="utf-8"))
    if match is None:
        raise ConfigError("conf/config.yaml has no `- data: <name>` line in its defaults list")
    return match.group(2)


def use(root: Path, name: str) -> str:
    """Make `name` the data set of conf/config.yaml's defaults list; return the one it replaces."""
    if not data_file(root, name).is_file():
        known = sorted(p.stem for p in (root / "conf" / "data").glob("*.yaml"))
        raise ConfigError(
            f"no data set {name!r} (conf/data/{name}.yaml); known: {', '.join(known)}. "
            "Add a table with `rnnlab data add`."
        )
    config = root / "conf" / "config.yaml"
    previous = selected(root)
    text = SELECTION.sub(lambda m: f"{m.group(1)}{name}{m.group(3)}", config.read_text(encoding="utf-8"), 1)
    with atomic_file(config, encoding="utf-8") as handle:
        handle.write(text)
    return previous
