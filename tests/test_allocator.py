"""`train.retain_freed_memory`: a training process reuses the pages of the large blocks it frees instead of
faulting fresh ones in every step (rnnlab.allocator). Counted as the process's minor page faults, in fresh
processes so that the setting never leaks into the test process."""

from __future__ import annotations

import json
import platform
import subprocess
import sys

import pytest

STEPS = 8
# Allocate, fill and free a 64 MB tensor (the pattern of a training step's largest buffers): two warm-up
# steps, then the minor page faults of STEPS more, after configure_cpu as train.py calls it.
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
print(json.dumps(faults() - before))
"""


def loop_faults(retain: bool) -> int:
    command = [sys.executable, "-c", LOOP.format(steps=STEPS), "true" if retain else "false"]
    done = subprocess.run(command, capture_output=True, text=True, check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="the switch is glibc's mallopt")
def test_retained_memory_is_reused_instead_of_faulted_in_every_step():
    default, retained = loop_faults(retain=False), loop_faults(retain=True)
    # glibc's default maps every block afresh, so every step faults its pages in again (16,384 of 4 KiB; fewer
    # where huge pages back it, hence the loose bound); retained, the warm-up's pages serve every later step
    assert default >= STEPS * 8, default
    assert retained * 10 < default, (default, retained)
