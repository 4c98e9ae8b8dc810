"""Every configuration value checked before a stage starts work.

`RULES` gives each key of conf/ its type and range or allowed values (a `model.<key>` rule also covers each
`models.<name>.<key>`), each task its own keys, metrics and sources (rnnlab.tasks.Task), and `_relations`
the values allowed alone but not together. `validate(cfg)` applies them to a composed config and raises one
ConfigError that names the key as the user wrote it and what it allows, e.g. `trainer.max_epochs=-3 is not
allowed; allowed: an integer >= 1`. Allowed values defined by the code that uses them (cells, schedulers,
task kinds, Lightning's precisions, ...) are imported from there, not repeated here. The keys whose allowed
values are Lightning's registries (`lightning_rules`) are checked only where a stage builds a trainer
(`validate(cfg, lightning=True)`): importing Lightning takes seconds that a data stage does not need.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterator, Mapping
from typing import Any, get_args

from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from rnnlab.config import model_config
from rnnlab.data import sources
from rnnlab.data.catalog import NAME_ALLOWED, NAME_PATTERN
from rnnlab.data.encode import SIDES
from rnnlab.data.tokenize import CONTRACTION_MODES, LEVELS
from rnnlab.data.vocab import Vocabulary
from rnnlab.diagnostics.choices import CLIP_ALGORITHMS, LAST
from rnnlab.errors import ConfigError
from rnnlab.models.choices import CELLS, INITS, MODES, POOLINGS, SCHEDULERS
from rnnlab.pretraining.outputs import NONE
from rnnlab.rules import Rule, choice, either, integer, is_int, items, nullable, number, passes, refused, text
from rnnlab.tasks import KINDS, task_of

COUNT, NON_NEGATIVE, BOOLEAN = integer(1), integer(0), choice((True, False), bad="maybe")
SEED = integer(0, 2**32 - 1)  # what numpy, scikit-learn and Lightning's seed_everything accept
FRACTION = number(0, 1, open_low=True, open_high=True)
DROPOUT = number(0, 1, open_high=True)
POSITIVE = number(0, open_low=True)
LABEL = either(
    text(), Rule(is_int, "an integer"), bad=("",), allowed="a label of the data (a string or an integer)"
)
PATHS = (
    "data_dir",
    "downloads_dir",
    "raw_dir",
    "prepared_dir",
    "encoded_dir",
    "models_dir",
    "pretrain_dir",
    "reports_dir",
    "runs_dir",
)

MODEL = {
    "name": text(),
    "cell": choice(CELLS),
    "bidirectional": BOOLEAN,
    "num_layers": COUNT,
    "hidden_size": COUNT,
    "embedding_dim": COUNT,
    "embedding_dropout": DROPOUT,
    "dropout": DROPOUT,
    "head_dropout": DROPOUT,
    "pooling": choice(POOLINGS),
    "init": choice(INITS),
    "forget_bias": nullable(number(), "keep the init's bias"),
    "pretrained_embeddings": nullable(text(), "no pretrained vectors"),
    # The classification task, which has a pretrain stage, allows more (its RULES)
    "init_from": Rule(lambda v: v == NONE, f"{NONE} (pretrained weights: the imdb task only)", ("word2vec",)),
    "freeze_embeddings_epochs": NON_NEGATIVE,
}

RULES: dict[str, Rule] = {
    "seed": SEED,
    "ckpt_path": nullable(text(), "start afresh"),
    "run_dir": nullable(text(), "the pipeline's model"),
    "model_key": text(),
    "optim.lr": POSITIVE,
    "optim.weight_decay": number(0),
    "optim.scheduler": choice(SCHEDULERS),
    "train.early_stopping_patience": NON_NEGATIVE,
    "train.checkpoint_every_n_steps": COUNT,
    "train.threads": nullable(COUNT, "$OMP_NUM_THREADS, else every available core"),
    "train.retain_freed_memory": BOOLEAN,
    "diagnostics.gradient_flow.epochs": items(either(NON_NEGATIVE, choice((LAST,)), bad=(-1,)), min_len=0),
    "diagnostics.gradient_flow.steps": COUNT,
    "diagnostics.gradient_flow.rows": COUNT,
    "diagnostics.gradient_flow.distance": COUNT,
    "compare.models": items(text(), unique=True),
    "compare.sweep": nullable(text(), "compare the DVC stage's reports of compare.models"),
    "registry.model_name": nullable(text(), "<data.name>-sentiment"),
    **{f"paths.{key}": text() for key in PATHS},
    "data.name": Rule(
        lambda v: isinstance(v, str) and bool(re.fullmatch(NAME_PATTERN, v)),
        NAME_ALLOWED,
        bad=("../imdb", "My Reviews"),
    ),
    "data.source.uri": nullable(text(), "set RNNLAB_<NAME>_SOURCE"),
    "data.source.sha256": nullable(
        passes(lambda v: sources.checked_sha256(v, ""), "64 hexadecimal digits", ("abc",)), "not checked"
    ),
    "data.source.package": text(),
    "data.source.dataset": text(),
    "data.source.text_column": text(),
    "data.source.label_column": text(),
    "data.source.test_uri": nullable(text(), "split data.source.uri by test_fraction"),
    "data.source.test_fraction": FRACTION,
    "data.source.seed": SEED,
    "data.download.retries": NON_NEGATIVE,
    "data.download.timeout_s": POSITIVE,
    "data.download.chunk_bytes": COUNT,
    "data.tokenizer.level": choice(LEVELS),
    "data.tokenizer.lowercase": BOOLEAN,
    "data.tokenizer.strip_html": BOOLEAN,
    "data.tokenizer.contractions": choice(CONTRACTION_MODES),
    "data.vocab.max_size": nullable(integer(len(Vocabulary.SPECIALS) + 1), "no limit"),  # specials + 1 token
    "data.vocab.min_freq": COUNT,
    "data.positive_label": nullable(LABEL, "the label that sorts last"),
    "data.split.val_fraction": FRACTION,
    "data.split.test_fraction": FRACTION,
    "data.split.seed": SEED,
    "data.encode.max_len": COUNT,
    "data.encode.padding": choice(SIDES),
    "data.encode.truncating": choice(SIDES),
    "data.loader.batch_size": COUNT,
    "data.loader.num_workers": NON_NEGATIVE,
    "data.loader.bucket": BOOLEAN,
    **{f"model.{key}": rule for key, rule in MODEL.items()},
    **{f"models.*.{key}": rule for key, rule in MODEL.items()},
    "trainer.devices": either(
        choice(("auto", -1)),
        COUNT,
        items(NON_NEGATIVE, unique=True),
        bad=(0, [0, 0]),
        allowed="auto, -1 (every device), a number of devices >= 1, or a list of distinct device indices",
    ),
    "trainer.num_nodes": COUNT,
    "trainer.max_epochs": COUNT,
    "trainer.gradient_clip_val": nullable(number(0), "no clipping"),
    "trainer.gradient_clip_algorithm": choice(CLIP_ALGORITHMS),
    "trainer.deterministic": choice((True, False, "warn")),
    "trainer.log_every_n_steps": NON_NEGATIVE,
    "trainer.limit_train_batches": either(number(0, 1, open_low=True), COUNT, bad=(0, 1.5)),
    "trainer.limit_val_batches": either(number(0, 1, open_low=True), COUNT, bad=(0, 1.5)),
    "trainer.enable_progress_bar": BOOLEAN,
    "logger.tracking_uri": nullable(text(), "$MLFLOW_TRACKING_URI, else sqlite:///<project>/mlflow.db"),
    "logger.experiment_name": text(),
    "logger.system_metrics": BOOLEAN,
    "logger.system_metrics_s": POSITIVE,
    "task.name": text(),
    "task.kind": choice(KINDS),
    "task.mode": choice(MODES),
}


@functools.cache
def lightning_rules() -> dict[str, Rule]:
    """The trainer keys whose allowed values are Lightning's registries (imports Lightning)."""
    from lightning.fabric.connector import _PRECISION_INPUT
    from lightning.pytorch.accelerators import AcceleratorRegistry
    from lightning.pytorch.strategies import StrategyRegistry

    precisions = tuple(value for literal in get_args(_PRECISION_INPUT) for value in get_args(literal))
    return {
        "trainer.accelerator": choice(("auto", "gpu", *sorted(AcceleratorRegistry.available_accelerators()))),
        "trainer.strategy": choice(("auto", *StrategyRegistry.available_strategies())),
        "trainer.precision": choice(precisions),
    }


def rules_for(kind: str, lightning: bool = True) -> dict[str, Rule]:
    """Every rule that applies to a config of task kind `kind`: the shared ones, the task's own, and (unless
    `lightning` is false) those of the keys only a Lightning trainer reads."""
    task = task_of(kind)
    return {
        **RULES,
        **(lightning_rules() if lightning else {}),
        "task.monitor": choice(tuple(task.MONITORS)),
        "data.source.kind": choice(task.SOURCE_KINDS),
        **task.RULES,
    }


def rule_key(key: str) -> str:
    """The rule that covers `key`: `models.<name>.<k>` is covered by `models.*.<k>`."""
    return re.sub(r"^models\.[^.]+\.", "models.*.", key)


def leaves(node: Any, prefix: str = "") -> Iterator[tuple[str, Any]]:
    """(dotted key, value) of every non-mapping value under `node`; lists are values."""
    if isinstance(node, Mapping):
        for key, value in node.items():
            yield from leaves(value, f"{prefix}{key}.")
    else:
        yield prefix[:-1], node


def _models(cfg: dict) -> dict:
    return cfg.get("models") or {}


def _trained(cfg: dict) -> tuple[str, dict]:
    """The key and settings of the cell a stage works on (`models.<model_key>`, else `model`)."""
    key = cfg.get("model_key")
    return (f"models.{key}", _models(cfg)[key]) if key is not None else ("model", cfg.get("model") or {})


def _relations(cfg: dict) -> Iterator[str]:
    """Messages for values that are allowed alone but not together."""
    kind, task = cfg["task"]["kind"], cfg["task"]
    if "model_key" in cfg:
        try:
            model_config(DictConfig(cfg))
        except ConfigError as error:
            yield str(error)
            return
    for name, settings in _models(cfg).items():
        if settings.get("name") != name:
            yield refused(f"models.{name}.name", settings.get("name"), f"{name!r} (its key under models)")
    monitors = task_of(kind).MONITORS
    if "monitor" in task and monitors[task["monitor"]] != task.get("mode"):
        needed = monitors[task["monitor"]]
        yield refused("task.mode", task.get("mode"), f"{needed} (task.monitor={task['monitor']!r})")
    flow = (cfg.get("diagnostics") or {}).get("gradient_flow") or {}
    if "distance" in flow and "steps" in flow and flow["distance"] >= flow["steps"]:
        yield refused(
            "diagnostics.gradient_flow.distance",
            flow["distance"],
            f"an integer < diagnostics.gradient_flow.steps ({flow['steps']})",
        )
    compared = (cfg.get("compare") or {}).get("models") or []
    if not set(compared) <= set(_models(cfg)):
        yield refused("compare.models", compared, "a list of names under models: " + ", ".join(_models(cfg)))
    yield from _data_relations(cfg.get("data") or {})
    trainer = cfg.get("trainer") or {}
    devices = trainer.get("devices", "auto")
    if trainer.get("accelerator") == "cpu" and not (devices == "auto" or (is_int(devices) and devices >= 1)):
        yield refused("trainer.devices", devices, "auto or an integer >= 1 (trainer.accelerator=cpu)")
    yield from task_of(kind).relations(cfg, *_trained(cfg))


def _data_relations(data: dict) -> Iterator[str]:
    split = data.get("split") or {}
    val, test = split.get("val_fraction", 0), split.get("test_fraction", 0)
    if val + test >= 1:
        yield refused(
            "data.split.test_fraction",
            test,
            f"a number < 1 - data.split.val_fraction ({val}): the train split needs rows",
        )


def validate(cfg: DictConfig, lightning: bool = True) -> None:
    """Raise one ConfigError naming every key of `cfg` whose value is not allowed (the first in full).
    `lightning=False` (a stage that builds no trainer) leaves out the keys only a Lightning trainer reads,
    and does not import Lightning."""
    try:
        plain = OmegaConf.to_container(cfg, resolve=True, throw_on_missing=True)
    except OmegaConfBaseException as error:
        raise ConfigError(f"{error.full_key} cannot be resolved: {str(error).splitlines()[0]}") from None
    kind = (plain.get("task") or {}).get("kind")
    if not RULES["task.kind"].test(kind):
        raise ConfigError(refused("task.kind", kind, RULES["task.kind"].allowed))
    rules = rules_for(kind, lightning)
    problems = [
        (key, refused(key, value, rules[rule_key(key)].allowed))
        for key, value in leaves(plain)
        if rule_key(key) in rules and not rules[rule_key(key)].test(value)
    ]
    # A key the user set comes before one that only copies it (logger.experiment_name: ${task.name}).
    copied = {key for key, value in leaves(OmegaConf.to_container(cfg)) if "${" in str(value)}
    problems.sort(key=lambda problem: problem[0] in copied)
    if not problems:
        problems = [(message.split("=", 1)[0], message) for message in _relations(plain)]
    if problems:
        others = [key for key, _ in problems[1:]]
        raise ConfigError(problems[0][1] + (f" (also not allowed: {', '.join(others)})" if others else ""))
