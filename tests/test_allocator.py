"""`train.retain_freed_memory`: a training process reuses the pages of the large blocks it frees instead of
faulting fresh ones in every step (rnnlab.allocator), and computes exactly what it computed without. Counted
as the process's minor page faults, in fresh processes so that the setting never leaks into the test
process."""

from __future__ import annotations

import json
import platform
import subprocess
import sys

import pytest

STEPS = 8
# Allocate, fill and free a 64 MB tensor (the pattern of a training step's largest buffers): two warm-up
# steps, then the minor page faults of STEPS more, after configure_cpu as train.py calls it; then the
# gradients of a seeded LSTM on a long batch, bit for bit.
LOOP = """
import json, resource, sys, torch
from rnnlab.training import configure_cpu
configure_cpu(1, retain_freed_memory=sys.argv[1] == "true")
def faults():
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt
def step():
    torch.empty(16 * 2**20).fill_(1.0)
step(), step()
before = faults()
for _ in range({steps}):
    step()
faulted = faults() - before
torch.manual_seed(0)
lstm = torch.nn.LSTM(16, 32, batch_first=True, bidirectional=True)
lstm(torch.randn(64, 300, 16))[0].square().sum().backward()
print(json.dumps([faulted, [p.grad.numpy().tobytes().hex() for p in lstm.parameters()]]))
"""


def faults_and_gradients(retain: bool) -> tuple[int, list[str]]:
    command = [sys.executable, "-c", LOOP.format(steps=STEPS), "true" if retain else "false"]
    done = subprocess.run(command, capture_output=True, text=True, check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="the switch is glibc's mallopt")
def test_retained_memory_is_reused_not_faulted_in_and_gives_the_same_gradients():
    (default, gradients), (retained, retained_gradients) = map(faults_and_gradients, (False, True))
    # glibc's default maps every block afresh, so every step faults its pages in again (16,384 of 4 KiB; fewer
    # where huge pages back it, hence the loose bound); retained, the warm-up's pages serve every later step
    assert default >= STEPS * 8, default
    assert retained * 10 < default, (default, retained)
    assert retained_gradients == gradients


def test_other_c_libraries_are_left_alone(monkeypatch, caplog):
    from rnnlab import allocator

    monkeypatch.setattr(allocator.platform, "libc_ver", lambda: ("", ""))
    with caplog.at_level("INFO", logger="rnnlab.allocator"):
        assert allocator.retain_freed_memory() is False
    assert "not glibc" in caplog.text
