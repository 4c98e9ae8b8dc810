"""The character corpus's truncated-BPTT loaders: the prepared train and validation streams, cut into in-order
chunks as rnnlab.models.truncated_bptt describes."""

from __future__ import annotations

import os
from pathlib import Path

from rnnlab.errors import LayoutError
from rnnlab.io import read_json
from rnnlab.models.truncated_bptt import BpttChunks, BpttDataModule
from rnnlab.tasks.charlm.corpus import META_FILE, SPLITS, VOCAB_FILE, CharVocabulary, PreparedCorpus


class CharLMDataModule(BpttDataModule):
    """Train/val truncated-BPTT loaders over a prepared corpus (corpus.PreparedCorpus.save), in order."""

    def __init__(
        self, prepared_dir: str | os.PathLike, batch_size: int, chunk_len: int, num_workers: int = 0
    ) -> None:
        super().__init__(batch_size, chunk_len, num_workers)
        self.prepared_dir = Path(prepared_dir)
        meta_path = self.prepared_dir / META_FILE
        if not meta_path.is_file():
            raise LayoutError(f"{meta_path} does not exist: run the prepare stage with task=charlm first.")
        self.meta = read_json(meta_path)
        for split in SPLITS:
            remedy = "Lower batch_size or chunk_len, or raise data.max_chars."
            self.check_size(split, int(self.meta["chars"][split]), "characters", remedy)

    @property
    def vocab_size(self) -> int:
        return int(self.meta["vocab_size"])

    @property
    def vocab(self) -> CharVocabulary:
        """The corpus's character vocabulary (for encoding prompts and decoding samples)."""
        return CharVocabulary.load(self.prepared_dir / VOCAB_FILE)

    def setup(self, stage: str | None = None) -> None:
        if not self.datasets:
            corpus = PreparedCorpus.load(self.prepared_dir)
            self.datasets = {
                split: BpttChunks(getattr(corpus, split), self.batch_size, self.chunk_len) for split in SPLITS
            }
