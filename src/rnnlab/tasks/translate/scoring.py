"""Score a translation model on a held-out split: beam-search decoding, sacrebleu's BLEU and chrF of the
detokenized output against the raw references (with sacrebleu's signature, so the numbers can be compared),
BLEU by source length, and the attention weights of sentences of every source length for heat maps.

BLEU is sacrebleu's corpus BLEU with its default 13a tokenization; when the data is lower-cased
(`data.tokenizer.lowercase`), the references are lower-cased too (sacrebleu's `lowercase=True`), and the
signature says `case:lc`. The references get the typographic normalisation the training text got
(`text.normalize`: ’ -> ', no-break spaces -> spaces), else `j’ai` in a reference could never match the
`j'ai` the model learnt; nothing else about them changes.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from sacrebleu.metrics import BLEU, CHRF
from tqdm import tqdm

from rnnlab.buckets import assign_buckets, bucket_names, metric_key
from rnnlab.tasks.translate.batches import TranslationDataModule
from rnnlab.tasks.translate.search import Decoding
from rnnlab.tasks.translate.seq2seq import Seq2SeqTranslator
from rnnlab.tasks.translate.text import detokenize, normalize


@dataclass
class Decoded:
    """A split's sources and references (raw), hypotheses (detokenized) and source lengths in tokens, and,
    when kept, the (source tokens, output tokens, weights) of the first sentence of each source length
    translated to words, shortest first."""

    sources: list[str]
    references: list[str]
    hypotheses: list[str]
    source_lengths: np.ndarray
    attention: list[tuple[list[str], list[str], np.ndarray]] = field(default_factory=list)


@torch.no_grad()
def decode(
    model: Seq2SeqTranslator,
    data: TranslationDataModule,
    split: str,
    decoding: Decoding,
    target_language: str,
    keep_attention: bool = False,
) -> Decoded:
    """Translate every pair of `split` ("val" or "test"), detokenized as `target_language`. A source sentence
    is translated once: tatoeba gives many sentences several translations, and a pair whose source ids were
    already translated gets that translation (decoding does not depend on the batch: the masks keep padding
    out, `tests/test_translate_model.py`)."""
    loader = data.val_dataloader() if split == "val" else data.test_dataloader()
    sources, references = data.texts(split)
    hypotheses: list[str] = [""] * len(sources)
    lengths = np.zeros(len(sources), dtype=np.int64)
    attention: dict[int, tuple[list[str], list[str], np.ndarray]] = {}  # source length -> the first one
    translated: dict[tuple[int, ...], str] = {}  # source ids -> detokenized translation
    for batch in tqdm(loader, desc=f"translating {split}", unit="batch", leave=False):
        rows, src_lengths = batch["index"].tolist(), batch["src_lengths"].tolist()
        keys = [tuple(ids[:length]) for ids, length in zip(batch["src"].tolist(), src_lengths, strict=True)]
        first: dict[tuple[int, ...], int] = {}  # an untranslated source -> its first row in the batch
        for i, key in enumerate(keys):
            if key not in translated:
                first.setdefault(key, i)
        new = list(first.values())
        if new:
            width = max(src_lengths[i] for i in new)
            found = model.translate(
                batch["src"][new, :width],
                batch["src_lengths"][new],
                decoding.beam_size,
                decoding.length_penalty,
                decoding.max_len,
            )
            for i, hypothesis in zip(new, found, strict=True):
                words = data.tgt_vocab.decode(hypothesis.tokens)
                translated[keys[i]] = detokenize(words, target_language)
                kept = keep_attention and hypothesis.attention is not None and words
                if kept and len(keys[i]) not in attention:
                    shown = data.src_vocab.decode(keys[i])
                    attention[len(keys[i])] = (shown, words, hypothesis.attention.cpu().numpy())
        for row, key, length in zip(rows, keys, src_lengths, strict=True):
            hypotheses[row], lengths[row] = translated[key], length
    shortest_first = [attention[length] for length in sorted(attention)]
    return Decoded(list(sources), list(references), hypotheses, lengths, shortest_first)


def corpus_scores(hypotheses: Sequence[str], references: Sequence[str], lowercase: bool) -> dict[str, Any]:
    """sacrebleu's corpus BLEU and chrF of `hypotheses` against the (typographically normalised) references,
    and their signatures."""
    bleu, chrf = BLEU(lowercase=lowercase), CHRF(lowercase=lowercase)
    refs = [[normalize(reference) for reference in references]]
    return {
        "bleu": bleu.corpus_score(list(hypotheses), refs).score,
        "chrf": chrf.corpus_score(list(hypotheses), refs).score,
        "n": len(hypotheses),
        "signature": {"bleu": str(bleu.get_signature()), "chrf": str(chrf.get_signature())},
    }


def bleu_by_length(decoded: Decoded, edges: Sequence[int], lowercase: bool) -> dict[str, dict[str, Any]]:
    """Corpus BLEU of the sentences in each source-length bucket (`<=5`, `6-8`, ...), and their number;
    an empty bucket has BLEU None."""
    index = assign_buckets(torch.as_tensor(decoded.source_lengths), edges).numpy()
    found = {}
    for i, name in enumerate(bucket_names(edges)):
        rows = np.flatnonzero(index == i)
        hyps = [decoded.hypotheses[r] for r in rows]
        refs = [normalize(decoded.references[r]) for r in rows]
        score = BLEU(lowercase=lowercase).corpus_score(hyps, [refs]).score if len(rows) else None
        found[name] = {"bleu": score, "n": int(len(rows))}
    return found


def mlflow_metrics(report: dict[str, Any]) -> dict[str, float]:
    """`test/bleu`, `test/chrf`, `val/bleu`, `val/chrf` and `test/bleu_len_<bucket>` for the MLflow run."""
    metrics = {
        "test/bleu": report["bleu"],
        "test/chrf": report["chrf"],
        "val/bleu": report["val_bleu"],
        "val/chrf": report["val_chrf"],
    }
    for name, facts in report["length_buckets"].items():
        if facts["bleu"] is not None:
            metrics[f"test/bleu_len_{metric_key(name)}"] = facts["bleu"]
    return metrics
