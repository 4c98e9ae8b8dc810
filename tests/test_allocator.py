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

STEPS = 24
# Allocate, fill and free a 64 MB tensor (the pattern of a training step's largest buffers) STEPS times after
# configure_cpu as train.py calls it, counting each step's minor page faults; then the gradients of a seeded
# LSTM on a long batch, bit for bit.
LOOP = """
import json, resource, sys, torch
from rnnlab.training import configure_cpu
configure_cpu(1, retain_freed_memory=sys.argv[1] == "true")
def faults():
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt
faulted = []
for _ in range({steps}):
    before = faults()
    torch.empty(16 * 2**20).fill_(1.0)
    faulted.append(faults() - before)
torch.manual_seed(0)
lstm = torch.nn.LSTM(16, 32, batch_first=True, bidirectional=True)
lstm(torch.randn(64, 300, 16))[0].square().sum().backward()
print(json.dumps([faulted, [p.grad.numpy().tobytes().hex() for p in lstm.parameters()]]))
"""
FAULTED = 1024  # pages: a step that faults a sixteenth of its 16,384 pages of 4 KiB in afresh


def faults_and_gradients(retain: bool) -> tuple[list[int], list[str]]:
    command = [sys.executable, "-c", LOOP.format(steps=STEPS), "true" if retain else "false"]
    done = subprocess.run(command, capture_output=True, text=True, check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="the switch is glibc's mallopt")
def test_retained_memory_is_reused_not_faulted_in_and_gives_the_same_gradients():
    (default, gradients), (retained, retained_gradients) = map(faults_and_gradients, (False, True))
    # glibc's default maps every block afresh, so every step faults its pages in again (fewer where huge pages
    # back it, hence the loose bound)
    assert all(pages >= FAULTED for pages in default), default
    # retained, a step reuses freed pages once the heap has a free block the aligned request fits in: up to
    # the 8th step in 200 runs of this loop (the first step's block, the tensor's small allocations after it)
    assert sum(pages >= FAULTED for pages in retained) <= STEPS // 2, retained
    assert not any(pages >= FAULTED for pages in retained[-8:]), retained
    assert retained_gradients == gradients


def test_other_c_libraries_are_left_alone(monkeypatch, caplog):
    from rnnlab import allocator

    monkeypatch.setattr(allocator.platform, "libc_ver", lambda: ("", ""))
    with caplog.at_level("INFO", logger="rnnlab.allocator"):
        assert allocator.retain_freed_memory() is False
    assert "not glibc" in caplog.text
