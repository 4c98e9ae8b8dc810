"""Translation scores: sacrebleu's BLEU checked by hand, BLEU by source length, the MLflow names, and
decoding a split (each source sentence translated once)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from rnnlab.tasks.translate.scoring import Decoded, bleu_by_length, corpus_scores, decode, mlflow_metrics
from rnnlab.tasks.translate.search import Decoding
from rnnlab.tasks.translate.seq2seq import Seq2SeqTranslator
from rnnlab.tasks.translate.text import detokenize
from rnnlab.tasks.translate.vocab import TranslationVocabulary


def test_bleu_of_a_hypothesis_one_word_short_is_the_brevity_penalty():
    # every n-gram of the hypothesis is in the reference (precisions 1), 6 words against 7 tokens: BLEU is
    # the brevity penalty exp(1 - 7/6), in percent
    scores = corpus_scores(["le chat dort sur la chaise"], ["Le chat dort sur la chaise."], lowercase=True)
    assert scores["bleu"] == pytest.approx(100 * math.exp(1 - 7 / 6))
    assert scores["signature"]["bleu"].startswith("nrefs:1|case:lc|")
    cased = corpus_scores(["le chat dort sur la chaise ."], ["Le chat dort sur la chaise."], lowercase=False)
    # "le" does not match "Le" cased: unigrams 6/7, bigrams 5/6, trigrams 4/5, 4-grams 3/4, no brevity penalty
    assert cased["bleu"] == pytest.approx(100 * (6 / 7 * 5 / 6 * 4 / 5 * 3 / 4) ** 0.25)
    assert cased["signature"]["bleu"].startswith("nrefs:1|case:mixed|")
    # a typographic apostrophe in the reference is the plain one the training text had
    curly = corpus_scores(["j'ai gagné la course hier."], ["J’ai gagné la course hier."], lowercase=True)
    assert curly["bleu"] == pytest.approx(100.0) and curly["chrf"] == pytest.approx(100.0)


def test_bleu_by_length_scores_each_bucket_on_its_own_sentences():
    decoded = Decoded(
        sources=["a b", "a b c d e f g"],
        references=["il est là .", "nous sommes allés à la plage hier ."],
        hypotheses=["il est là .", "je mange une pomme"],
        source_lengths=np.array([2, 7]),
    )
    found = bleu_by_length(decoded, [5, 10], lowercase=True)
    assert found == {
        "<=5": {"bleu": pytest.approx(100.0), "n": 1},
        "6-10": {"bleu": 0.0, "n": 1},
        ">10": {"bleu": None, "n": 0},
    }
    report = {"bleu": 50.0, "chrf": 40.0, "val_bleu": 45.0, "val_chrf": 41.0, "length_buckets": found}
    assert mlflow_metrics(report) == {
        "test/bleu": 50.0,
        "test/chrf": 40.0,
        "val/bleu": 45.0,
        "val/chrf": 41.0,
        "test/bleu_len_le5": pytest.approx(100.0),
        "test/bleu_len_6_10": 0.0,
    }


class PairsStub:
    """What `decode` reads of a TranslationDataModule: sequential test batches (row `index`, padded `src`,
    `src_lengths`), the raw texts, and the two vocabularies."""

    def __init__(self, sources: list[list[int]], batch_size: int) -> None:
        words = [f"w{i}" for i in range(10)]
        self.src_vocab = self.tgt_vocab = TranslationVocabulary.from_sentences([words])
        self.sources, self.batch_size = sources, batch_size

    def texts(self, split: str) -> tuple[list[str], list[str]]:
        return [f"source {i}" for i in range(len(self.sources))], ["ref"] * len(self.sources)

    def test_dataloader(self):
        for start in range(0, len(self.sources), self.batch_size):
            rows = self.sources[start : start + self.batch_size]
            src = torch.zeros(len(rows), max(map(len, rows)), dtype=torch.long)
            for i, row in enumerate(rows):
                src[i, : len(row)] = torch.tensor(row)
            yield {
                "src": src,
                "src_lengths": torch.tensor([len(row) for row in rows]),
                "index": torch.arange(start, start + len(rows)),
            }


def test_decode_translates_each_source_once_and_gives_every_pair_its_translation():
    torch.manual_seed(0)
    vocab = len(PairsStub([], 1).src_vocab)
    encoder = {"cell": "gru", "bidirectional": False, "hidden_size": 16, "embedding_dim": 8}
    decoder = {"cell": "gru", "hidden_size": 16, "embedding_dim": 8, "attention": "additive"}
    model = Seq2SeqTranslator(vocab, vocab, encoder, decoder)
    with torch.no_grad():  # untrained, it would end every translation at once: words until max_len instead
        model.decoder.output.bias[TranslationVocabulary.EOS] = -50.0
    a, b, c = [4, 5, 6], [7, 8], [9, 4, 5, 6, 7]
    data = PairsStub([a, a, b, c, a, b, b], batch_size=3)  # repeats within a batch and across batches
    calls: list[int] = []
    translate = model.translate

    def counted(src, src_lengths, *args):
        calls.append(len(src))
        return translate(src, src_lengths, *args)

    model.translate = counted
    decoded = decode(model, data, "test", Decoding(beam_size=3, max_len=6), "fr", keep_attention=True)
    assert calls == [2, 1]  # a and b in the first batch, c in the second; the third batch is all repeats
    alone = {}
    for name, ids in {"a": a, "b": b, "c": c}.items():
        (hypothesis,) = translate(torch.tensor([ids]), torch.tensor([len(ids)]), 3, 0.6, 6)
        alone[name] = detokenize(data.tgt_vocab.decode(hypothesis.tokens), "fr")
    assert len(set(alone.values())) == 3 and decoded.hypotheses == [alone[k] for k in "aabcabb"]
    assert decoded.source_lengths.tolist() == [3, 3, 2, 5, 3, 2, 2]
    shown = [data.src_vocab.decode(ids) for name, ids in zip("abc", (a, b, c), strict=True) if alone[name]]
    by_length = sorted(shown, key=len)  # a, b and c have different lengths: each is the first of its length
    assert shown and [words for words, _, _ in decoded.attention] == by_length


def test_heat_maps_are_spread_from_the_shortest_sentence_to_the_longest():
    from rnnlab.plots import evenly_spaced

    assert evenly_spaced(10, 4) == [0, 3, 6, 9]
    assert evenly_spaced(3, 4) == [0, 1, 2]  # fewer lengths than heat maps: all of them
    assert evenly_spaced(5, 1) == [0] and evenly_spaced(0, 2) == []
