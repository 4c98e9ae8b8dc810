"""Score the texts of concurrent callers together: one worker thread, each batch made of what is waiting.

The scoring server calls the model from several threads at once. Scored one request at a time, each call
pays its fixed costs again (the tokenizer's Arrow regex kernels cost tens of milliseconds per call here,
even for one text; ONNX Runtime runs one step per token of the longest text whatever the batch size) and
concurrent ONNX Runtime runs fight over the same cores. Scored together, a burst of small requests costs
about what one batch of their texts costs. A model whose outputs do not depend on the padding (rnnlab's
exports: checked in tests/test_export.py) gives each text the same answer either way.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable
from concurrent.futures import Future

import numpy as np


class BatchingScorer:
    """`scorer(texts)` -> `score(texts)`'s rows for these texts, scored in one call together with the texts
    of the callers waiting at the same time (up to `batch_size` texts, or one caller's texts if more)."""

    def __init__(self, score: Callable[[list[str]], np.ndarray], batch_size: int) -> None:
        self._score, self._batch_size = score, batch_size
        self._queue: queue.SimpleQueue[tuple[list[str], Future]] = queue.SimpleQueue()
        self.calls = 0  # how many batches were scored (for tests and benchmarks)
        threading.Thread(target=self._run, name="rnnlab-scorer", daemon=True).start()

    def __call__(self, texts: list[str]) -> np.ndarray:
        job: Future = Future()
        self._queue.put((texts, job))
        return job.result()

    def _run(self) -> None:
        while True:
            jobs = [self._queue.get()]
            size = len(jobs[0][0])
            while size < self._batch_size:
                try:
                    jobs.append(self._queue.get_nowait())
                except queue.Empty:
                    break
                size += len(jobs[-1][0])
            self.calls += 1
            try:
                rows = self._score([text for texts, _ in jobs for text in texts])
            except Exception as error:  # every caller of this batch gets the error
                for _, job in jobs:
                    job.set_exception(error)
                continue
            start = 0
            for texts, job in jobs:
                job.set_result(rows[start : start + len(texts)])
                start += len(texts)
