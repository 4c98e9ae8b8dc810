"""bench/bench_gradient_flow.py on the smoke pipeline's checkpoints: labelled checkpoints, the plot, and
the refusals its README section names."""

from __future__ import annotations

import subprocess
import sys

SCRIPT = "bench/bench_gradient_flow.py"  # run from the project, on the smoke pipeline's copy


def bench(script, work, env, *args: str) -> subprocess.CompletedProcess:
    command = [sys.executable, str(script), "--encoded", "data/encoded/imdb", *args]
    return subprocess.run(command, cwd=work, env=env, capture_output=True, text=True, timeout=300)


def test_labelled_checkpoints_are_measured_and_plotted(smoke_pipeline, project_root):
    work, env, _ = smoke_pipeline
    models = work / "models" / "imdb"
    done = bench(
        project_root / SCRIPT,
        work,
        env,
        *("--steps", "20", "--rows", "4", "--plot", "flow.png"),
        *("--checkpoint", f"plain rnn={models / 'rnn' / 'checkpoints' / 'best.ckpt'}"),
        *("--checkpoint", f"an lstm={models / 'lstm' / 'checkpoints' / 'best.ckpt'}"),
    )
    assert done.returncode == 0, done.stderr
    rows = [line.split() for line in done.stdout.splitlines()]
    for label in ("plain rnn", "an lstm"):
        measured = [row for row in rows if " ".join(row[:2]) == label]
        assert [row[2] for row in measured] == ["init", "trained"], done.stdout
        assert all(float(value) <= 0.5 for row in measured for value in row[3:6])  # log10 ratios
    assert (work / "flow.png").read_bytes()[:4] == b"\x89PNG"


def test_bad_checkpoint_arguments_are_refused_by_name(smoke_pipeline, project_root):
    work, env, _ = smoke_pipeline
    for args, message in (
        (["--checkpoint", "no-separator"], "--checkpoint wants LABEL=PATH"),
        (["--checkpoint", "x=nowhere.ckpt"], "no checkpoint at: nowhere.ckpt"),
        ([], "give --models or at least one --checkpoint"),
    ):
        done = bench(project_root / SCRIPT, work, env, *args)
        assert done.returncode != 0 and message in done.stderr and "Traceback" not in done.stderr, done.stderr
