"""`rnnlab generate` (charlm) and `rnnlab translate` (translate): the best model of a task's pipeline at work.

Both read the task's pipeline parameters (pipelines/<task>/params.yaml) to find its checkpoints and its
comparison, and take the cell the comparison ranks first unless told otherwise.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from rnnlab.config import project_root, resolve_path
from rnnlab.errors import RnnlabError
from rnnlab.stage import report_errors


def pipeline_params(params: Path, sync: str, hint: str):  # -> DictConfig (omegaconf imported when needed)
    """A pipeline's parameters file, which must exist; `sync` is the command that writes it."""
    if not params.is_file():
        raise RnnlabError(f"{params} is missing: run `{sync}`, or {hint}")
    from omegaconf import OmegaConf

    return OmegaConf.load(params)


def best_checkpoint(task: str, checkpoint: Path | None, cell: str | None) -> Path:
    """`checkpoint`, else the best checkpoint of `cell`, else of the cell the task's comparison ranks first
    (rnnlab.ranking on compare.csv, the task's COMPARE)."""
    if checkpoint is not None:
        if not checkpoint.is_file():
            raise RnnlabError(f"no checkpoint at {checkpoint}")
        return checkpoint
    root = project_root()
    params = pipeline_params(
        root / "pipelines" / task / "params.yaml", f"rnnlab sync-params --task {task}", "pass --checkpoint"
    )
    repro = f"`dvc repro pipelines/{task}/dvc.yaml`"
    if cell is None:
        table = resolve_path(params.paths.reports_dir, root) / "compare.csv"
        if not table.is_file():
            raise RnnlabError(
                f"no compared models yet ({table} is missing): run {repro}, or pass --model CELL or "
                "--checkpoint PATH"
            )
        import pandas as pd

        from rnnlab.ranking import best
        from rnnlab.tasks import task_of

        spec = task_of(params.task.kind).COMPARE
        ranked = pd.read_csv(table, index_col="model")[spec.rank_by]
        cell = best(ranked.to_dict(), spec.higher_is_better, spec.rank_by)
    path = resolve_path(params.paths.models_dir, root) / cell / "checkpoints" / "best.ckpt"
    if not path.is_file():
        raise RnnlabError(f"no checkpoint for {cell!r} at {path}: run {repro}")
    return path


@report_errors
def _generate(args: argparse.Namespace) -> int:
    from rnnlab.tasks.charlm import load_model

    model = load_model(best_checkpoint("charlm", args.checkpoint, args.model))
    strategy = "greedy" if args.greedy else "multinomial"
    print(model.sample(args.prompt, args.length, strategy, args.temperature, args.top_k, args.seed))
    return 0


@report_errors
def _translate(args: argparse.Namespace) -> int:
    from rnnlab.tasks.translate import load_model
    from rnnlab.tasks.translate.search import Decoding
    from rnnlab.tasks.translate.translator import translate_sentences

    root = project_root()
    params = pipeline_params(
        root / "pipelines" / "translate" / "params.yaml", "rnnlab sync-params --task translate", "pass --data"
    )
    model = load_model(best_checkpoint("translate", args.checkpoint, args.model))
    beam_size = params.eval.beam_size if args.beam_size is None else args.beam_size  # 0 is refused
    decoding = Decoding(beam_size, params.eval.length_penalty, params.eval.max_len)
    prepared = args.data or resolve_path(params.paths.prepared_dir, root)
    for translation in translate_sentences(model, prepared, args.sentences, decoding):
        print(translation)
    return 0


def add_task_parsers(commands: argparse._SubParsersAction) -> None:
    generate = commands.add_parser(
        "generate",
        help="generate text with the character language model (task charlm)",
        description="Print the prompt and the characters the model generates after it.",
    )
    generate.add_argument("--prompt", default="ROMEO:", help="text to start from (default: %(default)s)")
    generate.add_argument("--length", type=int, default=500, help="characters to generate (default: 500)")
    generate.add_argument("--temperature", type=float, default=0.8, help="sampling temperature (default 0.8)")
    generate.add_argument("--top-k", type=int, help="sample among the k most likely characters only")
    generate.add_argument("--greedy", action="store_true", help="always take the most likely character")
    generate.add_argument("--seed", type=int, default=0, help="random seed of the sampling (default: 0)")
    generate.add_argument("--model", help="cell whose best checkpoint to use (default: the best by val loss)")
    generate.add_argument("--checkpoint", type=Path, help="a .ckpt file of a charlm run")
    generate.set_defaults(func=_generate)
    translate = commands.add_parser(
        "translate",
        help="translate English sentences into French with the best model of the translate pipeline",
        description="Print one translation per sentence (beam search with the pipeline's eval settings).",
    )
    translate.add_argument("sentences", nargs="+", help="sentences to translate")
    translate.add_argument("--beam-size", type=int, help="beam width (default: eval.beam_size; 1: greedy)")
    translate.add_argument("--model", help="model whose best checkpoint to use (default: best val BLEU)")
    translate.add_argument("--checkpoint", type=Path, help="a .ckpt file of a translate run")
    translate.add_argument("--data", type=Path, help="its prepared data folder (default: the pipeline's)")
    translate.set_defaults(func=_translate)
