"""Every config value is checked before a stage starts work: a bad value for every numeric and enum key of
conf/ (generated from the rules, for each task) is refused with one message naming the key and what it
allows, and values allowed alone but not together are refused too (the stage scripts: test_stage_refusals)."""

from __future__ import annotations

import copy
import functools
import math
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from hydra.core.override_parser.overrides_parser import OverridesParser
from omegaconf import OmegaConf

from rnnlab.errors import ConfigError
from rnnlab.validation import RULES, leaves, rule_key, rules_for, validate

ROOT = Path(__file__).resolve().parents[1]
TASKS = {
    **{
        path.stem: [] if path.stem == "imdb" else [f"task={path.stem}"]
        for path in (ROOT / "conf" / "task").glob("*.yaml")
    },
    "table": ["data=table", "data.name=reviews"],
}
GROUPS = [
    f"{group}={path.stem}"
    for group in ("experiment", "trainer", "model", "hparams_search")
    for path in sorted((ROOT / "conf" / group).glob("*.yaml"))
]


def composed(overrides: list[str]):
    with initialize_config_dir(str(ROOT / "conf"), version_base="1.3"):
        return compose("config", overrides=overrides)


def written(value) -> str:
    """`value` as a Hydra command-line override writes it."""
    if isinstance(value, list):
        return "[" + ",".join(map(written, value)) + "]"
    if isinstance(value, str):
        return f"'{value}'"
    if value is None or isinstance(value, bool):
        return "null" if value is None else str(value).lower()
    return str(value)


def bad_value_cases() -> list:
    """(task, key, bad value) for every key of each task's composition that a rule covers, each rule's
    refused values once per task kind (a `models.<name>` rule once, for the first cell)."""
    cases, seen = [], set()
    for task, overrides in TASKS.items():
        cfg = composed(overrides)
        rules = rules_for(cfg.task.kind)
        for key, _ in leaves(cfg):
            rule = rules.get(rule_key(key))
            if rule is None or (rule_key(key), rule.allowed) in seen:
                continue
            seen.add((rule_key(key), rule.allowed))
            cases += [
                pytest.param(task, key, bad, rule.allowed, id=f"{task}-{key}={written(bad)}")
                for bad in rule.bad
            ]
    return cases


@pytest.mark.parametrize(
    "overrides",
    [[], *(o for o in TASKS.values() if o), *([g] for g in GROUPS)],
    ids=lambda o: " ".join(o) or "default",
)
def test_every_key_of_conf_has_a_rule_and_the_shipped_configs_pass(overrides):
    cfg = composed(overrides)
    rules = rules_for(cfg.task.kind)
    uncovered = [key for key, _ in leaves(cfg) if rule_key(key) not in rules]
    assert not uncovered, f"conf/ keys without a rule in rnnlab.validation.RULES: {uncovered}"
    validate(cfg)


def test_every_rule_names_a_key_of_conf():
    keys = {rule_key(key) for overrides in TASKS.values() for key, _ in leaves(composed(overrides))}
    assert set(RULES) - keys == {"model_key"}  # the DVC stages add it: +model_key=<cell>


@functools.cache
def task_config(task: str):
    return composed(TASKS[task])


def overridden(task: str, override: str):
    """The task's composition with `override` parsed by Hydra's override parser and applied (as compose
    does, without composing the whole tree again for each of the many cases)."""
    cfg = copy.deepcopy(task_config(task))
    parsed = OverridesParser.create().parse_overrides([override])[0]
    OmegaConf.update(cfg, parsed.key_or_group, parsed.value(), merge=False)
    return cfg


def test_overridden_matches_hydra_compose():
    overrides = ["models.lstm.hidden_size=-1", "eval.length_buckets=[200,100]", "data.source.uri=''"]
    for override in overrides:
        assert overridden("imdb", override) == composed([override])


@pytest.mark.parametrize(("task", "key", "bad", "allowed"), bad_value_cases())
def test_a_bad_value_is_refused_naming_the_key_and_what_it_allows(task, key, bad, allowed):
    cfg = overridden(task, f"{key}={written(bad)}")
    value = dict(leaves(OmegaConf.to_container(cfg)))[key]
    assert value == bad or (isinstance(bad, float) and math.isnan(bad) and math.isnan(value))  # as meant
    with pytest.raises(ConfigError) as refused:
        validate(cfg)
    message = str(refused.value)
    assert message.startswith(f"{key}=") and "is not allowed" in message
    assert allowed in message
    assert "\n" not in message


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (["trainer.max_epochs=-3"], "trainer.max_epochs=-3 is not allowed; allowed: an integer >= 1"),
        (["optim.lr=-1"], "optim.lr=-1 is not allowed; allowed: a number > 0"),
        (["+model_key=lstm", "models.lstm.hidden_size=-1"], "models.lstm.hidden_size=-1 is not allowed"),
        (["optim.scheduler=cosine"], "scheduler='cosine' is not allowed; allowed: one of plateau, onecycle"),
        (["trainer.precision=17"], "precision=17 is not allowed; allowed: one of 64, 32, 16, transformer"),
        (
            ["+model_key=transformer"],
            "model_key='transformer' is not allowed; allowed: one of rnn, lstm, gru",
        ),
        (["task.mode=min"], "task.mode='min' is not allowed; allowed: max (task.monitor='val/acc')"),
        (
            ["task=forecast", "task.monitor=val/acc"],
            "monitor='val/acc' is not allowed; allowed: one of val/loss",
        ),
        (["diagnostics.gradient_flow.distance=200"], "distance=200 is not allowed; allowed: an integer <"),
        (["compare.models=[lstm,transformer]"], "compare.models=['lstm', 'transformer'] is not allowed"),
        (["models.gru.name=lstm"], "models.gru.name='lstm' is not allowed; allowed: 'gru' (its key under"),
        (["task=forecast", "data.split.test_fraction=0.9"], "data.split.test_fraction=0.9 is not allowed"),
        (["task=forecast", "data.columns.target=Price"], "data.columns.target='Price' is not allowed"),
        (
            ["task=forecast", "data.seasonal_period=200"],
            "data.seasonal_period=200 is not allowed; allowed: an",
        ),
        (
            ["trainer=cpu", "trainer.devices=-1"],
            "trainer.devices=-1 is not allowed; allowed: auto or an integer",
        ),
        (
            ["task=charlm", "+model_key=bilstm"],
            "models.bilstm.bidirectional=true is not allowed; allowed: false",
        ),
        (["task=charlm", "model=bilstm"], "model.bidirectional=true is not allowed; allowed: false"),
        (
            ["task=translate", "task.decoder.bidirectional=true"],
            "task.decoder.bidirectional=true is not allowed; allowed: false (the decoder writes",
        ),
        (["task=translate", "data.languages.tgt=en"], "data.languages.tgt='en' is not allowed; allowed: a"),
        (["task=translate", "model.attention=luong"], "model.attention='luong' is not allowed; allowed: one"),
        (["paths.raw_dir=${data.nme}"], "paths.raw_dir cannot be resolved: Interpolation key 'data.nme'"),
        (
            ["data.name=''"],
            "data.name='' is not allowed; allowed: lower-case letters, digits, '-' and '_', starting with a "
            "letter or digit (at most 64) (also not allowed: logger.experiment_name)",
        ),
        (["trainer.max_epochs=2.5"], "trainer.max_epochs=2.5 is not allowed; allowed: an integer >= 1"),
        (["data.loader.bucket=1"], "data.loader.bucket=1 is not allowed; allowed: one of true, false"),
        (
            ["optim.lr=-1", "model.dropout=1.0"],
            "optim.lr=-1 is not allowed; allowed: a number > 0 (also not allowed: model.dropout)",
        ),
    ],
)
def test_values_allowed_alone_but_not_together_and_other_refusals(overrides, message):
    with pytest.raises(ConfigError) as refused:
        validate(composed(overrides))
    assert message in str(refused.value)
