"""`rnnlab data add|use|show`: your own labelled table as a data set (rnnlab.data.catalog does the work)."""

from __future__ import annotations

import argparse
from pathlib import Path

import yaml

from rnnlab.config import project_root
from rnnlab.data import catalog
from rnnlab.stage import report_errors


@report_errors
def _add(args: argparse.Namespace) -> int:
    root = project_root()
    path, facts = catalog.add_table(
        root,
        args.name,
        args.path,
        args.text_column,
        args.label_column,
        test_path=args.test_path,
        test_fraction=args.test_fraction,
        positive_label=args.positive_label,
        force=args.force,
    )
    classes = ",".join(f"{label}:{count}" for label, count in facts["classes"].items())
    dropped = sum(facts["dropped"].values())
    print(
        f"[data add] wrote {path.relative_to(root)} rows={sum(facts['rows'].values())} classes={classes} "
        f"dropped={dropped}"
    )
    if args.use:
        _report_use(root, args.name)
    else:
        print(f"select it with `rnnlab data use {args.name}` (or `-S data={args.name}` for one command)")
    return 0


@report_errors
def _use(args: argparse.Namespace) -> int:
    _report_use(project_root(), args.name)
    return 0


def _report_use(root: Path, name: str) -> None:
    """Select `name` in conf/config.yaml and rewrite params.yaml from it, so that `dvc repro` reads it too."""
    from rnnlab.params import DEFAULT_TASK, sync_params

    previous = catalog.use(root, name)
    params, _ = sync_params(root, DEFAULT_TASK)
    print(
        f"[data use] data={name} (was {previous}): conf/config.yaml selects it and "
        f"{params.relative_to(root)} is composed from it; `dvc repro`, `dvc exp run` and "
        "`python pipelines/...` use it from now on"
    )


@report_errors
def _show(args: argparse.Namespace) -> int:
    root = project_root()
    chosen = catalog.selected(root)
    for path in sorted((root / "conf" / "data").glob("*.yaml")):
        template = yaml.safe_load(path.read_text(encoding="utf-8")).get("name") is None
        note = "  (the template of `rnnlab data add`)" if template else ""
        print(("* " if path.stem == chosen else "  ") + path.stem + note)
    return 0


def add_data_parser(commands: argparse._SubParsersAction) -> None:
    data = commands.add_parser(
        "data",
        help="your own labelled table as a data set (conf/data/<name>.yaml)",
        description="README, 'Bring your own data'.",
    )
    actions = data.add_subparsers(dest="action", required=True)
    add = actions.add_parser(
        "add",
        help="check a CSV/parquet table and write conf/data/<name>.yaml for it",
        description="Reads the table as the download stage will (columns, label hygiene, at least two "
        "classes) and records its sha256.",
    )
    add.add_argument("name", help=f"the data set's name: {catalog.NAME_ALLOWED}")
    add.add_argument("--path", required=True, help="the table: .csv, .csv.gz or .parquet")
    add.add_argument("--text-column", default="text", help="column of the texts (default: %(default)s)")
    add.add_argument("--label-column", default="label", help="column of the labels (default: %(default)s)")
    add.add_argument("--test-path", help="a separate test table (default: a stratified split of --path)")
    add.add_argument("--test-fraction", type=float, default=0.2, help="without --test-path (default 0.2)")
    add.add_argument("--positive-label", help="binary tables: the class precision/recall/F1 score")
    add.add_argument("--use", action="store_true", help="also select it (as `rnnlab data use NAME`)")
    add.add_argument("--force", action="store_true", help="replace an existing conf/data/<name>.yaml")
    add.set_defaults(func=_add)
    use = actions.add_parser("use", help="select a data set in conf/config.yaml (sticks across dvc exp run)")
    use.add_argument("name", help="a file of conf/data/ without .yaml")
    use.set_defaults(func=_use)
    actions.add_parser("show", help="list the data sets; * marks the selected one").set_defaults(func=_show)
