"""bench/bench_pretrain.py on the mini archive: `--model` overrides reach the model it times."""

from __future__ import annotations

import re
import subprocess
import sys

SCRIPT = "bench/bench_pretrain.py"


def bench(project_root, mini_archive, *args: str) -> str:
    command = [sys.executable, SCRIPT, "--imdb", str(mini_archive), "--cells", "lstm", "--no-full"]
    command += ["--cutoffs", "500,2000"]  # the mini archive's vocabulary is under the default 12,000
    tiny = ["--batches", "1", "--repeats", "1", "--warmup", "1", "--batch-size", "4", "--chunk-len", "8"]
    done = subprocess.run(
        [*command, *tiny, *args], cwd=project_root, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_model_overrides_size_the_timed_language_model(project_root, mini_archive):
    default = bench(project_root, mini_archive)
    assert "  lstm    embedding 128, hidden 128, " in default and "model   :" not in default
    out = bench(
        project_root, mini_archive, "--model", "model.hidden_size=24", "--model", "model.embedding_dim=8"
    )
    assert "model   : conf/model/<cell>.yaml with model.hidden_size=24 model.embedding_dim=8" in out
    assert "  lstm    embedding 8, hidden 24, " in out
    counts = [int(re.search(r"([\d,]+) parameters", text)[1].replace(",", "")) for text in (default, out)]
    assert counts[1] < counts[0]
    assert re.search(r"^lstm\s+adaptive\s+[\d,]+\s+[\d,]+", out, re.MULTILINE), out
