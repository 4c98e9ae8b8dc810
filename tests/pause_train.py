"""`pipelines/train.py` with one more callback: at a chosen point it writes a marker file and waits there, so
that tests/test_resume.py can SIGKILL (or SIGINT) the training process at that very point.

    python tests/pause_train.py <point> <marker file> <Hydra overrides...>

Points: `step:<n>` after optimizer step n (before that step's checkpoint), `validation:<epoch>` during that
epoch's validation, `epoch_start:<epoch>` when that epoch starts (after the previous epoch's checkpoint).
SIGUSR1 prints every thread's stack to stderr (what a test shows when the process does not end).
"""

from __future__ import annotations

import faulthandler
import runpy
import signal
import sys
import time
from pathlib import Path

import lightning as L

import rnnlab.training


class PauseAt(L.Callback):
    def __init__(self, point: str, marker: Path) -> None:
        kind, value = point.split(":")
        self.kind, self.value, self.marker = kind, int(value), marker

    def pause(self, kind: str, value: int) -> None:
        if (kind, value) == (self.kind, self.value):
            self.marker.write_text(f"{kind}:{value}\n")
            time.sleep(600)

    def on_train_batch_end(self, trainer: L.Trainer, *args: object) -> None:
        self.pause("step", trainer.global_step)

    def on_validation_batch_end(self, trainer: L.Trainer, *args: object) -> None:
        if not trainer.sanity_checking:
            self.pause("validation", trainer.current_epoch)

    def on_train_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.pause("epoch_start", trainer.current_epoch)


def default_ctrl_c() -> None:
    """Ctrl-C as a terminal user's process gets it: Python's KeyboardInterrupt, not blocked. A test's parent
    (an xdist worker after some library's in-process work) may pass SIGINT on ignored or blocked, and the
    SIGINT test would then wait in `pause` for ever; say so on stderr when it did."""
    inherited = signal.getsignal(signal.SIGINT), signal.SIGINT in signal.pthread_sigmask(signal.SIG_BLOCK, [])
    if inherited != (signal.default_int_handler, False):
        print(f"pause_train: SIGINT inherited as {inherited[0]!r}, blocked={inherited[1]}", file=sys.stderr)
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, [signal.SIGINT])


if __name__ == "__main__":
    faulthandler.register(signal.SIGUSR1, all_threads=True)
    default_ctrl_c()
    point, marker, *overrides = sys.argv[1:]
    build_callbacks = rnnlab.training.build_callbacks
    pause = PauseAt(point, Path(marker))
    rnnlab.training.build_callbacks = lambda *args, **kwargs: [*build_callbacks(*args, **kwargs), pause]
    script = Path(__file__).resolve().parents[1] / "pipelines" / "train.py"
    sys.argv = [str(script), *overrides]
    runpy.run_path(str(script), run_name="__main__")
