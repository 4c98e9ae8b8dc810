"""The translation model: attention masks, training paths, greedy and beam search (CPU, tiny sizes)."""

from __future__ import annotations

import lightning as L
import pytest
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader

from rnnlab.errors import ConfigError
from rnnlab.tasks.translate.attention import Attention
from rnnlab.tasks.translate.search import SpecialIds, beam_search, greedy
from rnnlab.tasks.translate.seq2seq import Seq2SeqTranslator

PAD, OOV, BOS, EOS = 0, 1, 2, 3
SRC_VOCAB, TGT_VOCAB = 14, 14  # ids 4..13 are words
KINDS = ("additive", "multiplicative", "dot")


def model(
    cell="gru", attention="additive", bidirectional=False, seed=0, hidden=16, **overrides
) -> Seq2SeqTranslator:
    torch.manual_seed(seed)
    encoder = dict(
        cell=cell, bidirectional=bidirectional, hidden_size=hidden // (1 + bidirectional), embedding_dim=12
    )
    decoder = dict(cell=cell, hidden_size=hidden, embedding_dim=12, attention=attention)
    return Seq2SeqTranslator(SRC_VOCAB, TGT_VOCAB, encoder, decoder, **overrides)


def padded(rows: list[list[int]], width: int | None = None) -> torch.Tensor:
    ids = torch.full((len(rows), width or max(map(len, rows))), PAD, dtype=torch.long)
    for i, row in enumerate(rows):
        ids[i, : len(row)] = torch.tensor(row)
    return ids


def reverse_task(n=30, seed=0) -> dict[str, torch.Tensor]:
    """`n` sentences of 2..6 words and their reversal as the target."""
    g = torch.Generator().manual_seed(seed)
    lengths = torch.randint(2, 7, (n,), generator=g).tolist()
    sources = [torch.randint(4, SRC_VOCAB, (length,), generator=g).tolist() for length in lengths]
    targets = [[BOS, *reversed(s), EOS] for s in sources]
    return {
        "src": padded(sources),
        "src_lengths": torch.tensor([len(s) for s in sources]),
        "tgt": padded(targets),
        "index": torch.arange(n),
    }


def fit(translator: Seq2SeqTranslator, batch, steps: int, lr: float = 1e-2) -> Seq2SeqTranslator:
    optimizer = torch.optim.Adam(translator.parameters(), lr=lr)
    smoothing = translator.hparams.label_smoothing
    for _ in range(steps):
        loss, _ = translator._loss(batch, translator.hparams.teacher_forcing, smoothing)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    return translator


def sequence_log_prob(translator: Seq2SeqTranslator, src, lengths, tokens: list[int]) -> float:
    """log p(tokens <eos> | src) under the decoding distribution (no <pad>/<bos>), teacher forced."""
    tgt = torch.tensor([[BOS, *tokens, EOS]])
    with torch.no_grad():
        logits = translator.eval()(src, lengths, tgt)[0]
    logits[:, [PAD, BOS, OOV]] = float("-inf")
    return float(logits.log_softmax(-1).gather(1, tgt[0, 1:, None]).sum())


@pytest.mark.parametrize("kind", KINDS)
def test_attention_gives_padding_exactly_zero_weight(kind):
    torch.manual_seed(0)
    attention = Attention(kind, query_size=6, value_size=6, attention_size=5)
    values, mask = torch.randn(3, 5, 6), torch.arange(5) < torch.tensor([[5], [3], [1]])
    context, weights = attention(torch.randn(3, 6), attention.memory(values, mask))
    assert torch.all(weights[~mask] == 0.0) and torch.all(weights[mask] > 0)
    assert torch.allclose(weights.sum(-1), torch.ones(3))
    assert torch.allclose(context, torch.einsum("ns,nsd->nd", weights, values), atol=1e-6)
    noisy = values.masked_fill(~mask.unsqueeze(-1), 1e3)  # what lies under the padding does not matter
    assert torch.equal(
        attention(torch.zeros(3, 6), attention.memory(noisy, mask))[0],
        attention(torch.zeros(3, 6), attention.memory(values, mask))[0],
    )


def test_bad_settings_are_refused_with_reasons():
    with pytest.raises(ConfigError, match="left to right and cannot read"):
        Seq2SeqTranslator(SRC_VOCAB, TGT_VOCAB, {"hidden_size": 8}, {"bidirectional": True})
    with pytest.raises(ConfigError, match="decoder.attention='luong' .* none, additive, multiplicative, dot"):
        model(attention="luong")
    with pytest.raises(ConfigError, match="'dot' needs the decoder's hidden size"):
        Seq2SeqTranslator(SRC_VOCAB, TGT_VOCAB, {"hidden_size": 8}, {"hidden_size": 16, "attention": "dot"})
    with pytest.raises(ConfigError, match="teacher_forcing"):
        model(teacher_forcing=1.5)


@pytest.mark.parametrize("attention", ["none", *KINDS])
def test_loss_ignores_padding(attention):
    translator, batch = model(attention=attention).eval(), reverse_task(4)
    wider = {**batch, "src": F.pad(batch["src"], (0, 3)), "tgt": F.pad(batch["tgt"], (0, 2))}
    loss, tokens = translator._loss(batch, 1.0, 0.0)
    assert tokens == int((batch["tgt"][:, 1:] != PAD).sum())
    assert torch.allclose(loss, translator._loss(wider, 1.0, 0.0)[0], atol=1e-6)
    single = [translator._loss({k: v[i : i + 1] for k, v in batch.items()}, 1.0, 0.0) for i in range(4)]
    assert torch.allclose(loss, sum(part * n for part, n in single) / tokens, atol=1e-6)  # token-averaged
    smoothed = translator._loss(batch, 1.0, 0.1)[
        0
    ]  # projects only the real tokens: same as all, ignoring pad
    logits, targets = translator(batch["src"], batch["src_lengths"], batch["tgt"]), batch["tgt"][:, 1:]
    full = F.cross_entropy(logits.flatten(0, 1), targets.flatten(), ignore_index=PAD, label_smoothing=0.1)
    assert torch.allclose(smoothed, full, atol=1e-6)


def test_teacher_forcing_ratios_run_and_reproduce():
    translator, batch = model(), reverse_task(8)
    args = (batch["src"], batch["src_lengths"], batch["tgt"])
    forced, free = translator(*args, teacher_forcing=1.0), translator(*args, teacher_forcing=0.0)
    assert forced.shape == free.shape == (8, batch["tgt"].size(1) - 1, TGT_VOCAB)
    assert not torch.allclose(forced, free)
    assert torch.equal(forced[:, 0], free[:, 0])  # the first step reads <bos> either way
    free.logsumexp(-1).sum().backward()  # the sampled path is differentiable too
    torch.manual_seed(7)
    first = translator(*args, teacher_forcing=0.5)
    torch.manual_seed(7)
    assert torch.equal(first, translator(*args, teacher_forcing=0.5))


@pytest.mark.parametrize(
    ("cell", "attention", "trained"),
    [
        ("gru", "additive", False),
        ("lstm", "multiplicative", False),
        ("rnn", "none", False),
        ("gru", "dot", True),
    ],
)
def test_beam_of_width_one_is_greedy(cell, attention, trained):
    translator, batch = model(cell, attention), reverse_task(12, seed=1)
    if trained:
        fit(translator, batch, 30)
    translator.eval()
    memory, state = translator.encode(batch["src"], batch["src_lengths"])
    found = greedy(translator.decoder, memory, state, SpecialIds(), max_len=9)
    beamed = beam_search(translator.decoder, memory, state, SpecialIds(), beam_size=1, alpha=0.7, max_len=9)
    assert [h.tokens for h in found] == [h.tokens for h in beamed]
    assert [h.score for h in found] == pytest.approx([h.score for h in beamed], abs=1e-5)
    for g, b in zip(found, beamed, strict=True):
        assert (g.attention is None and b.attention is None) or torch.allclose(g.attention, b.attention)


def test_oov_is_never_generated_even_when_it_is_the_likeliest_word():
    translator, batch = model("gru", "additive"), reverse_task(6, seed=2)
    with torch.no_grad():
        translator.decoder.output.bias[OOV] = 1e4  # <oov> would win every step
    for beam in (1, 3):
        found = translator.translate(batch["src"], batch["src_lengths"], beam_size=beam, max_len=6)
        assert all(OOV not in hypothesis.tokens and hypothesis.tokens for hypothesis in found)


@pytest.mark.parametrize("attention", ["none", "additive"])
def test_beam_search_scores_at_least_greedy_and_scores_are_log_probs(attention):
    translator, batch = model("lstm", attention, seed=3), reverse_task(10, seed=2)
    fit(translator, batch, 15)
    src, lengths = batch["src"], batch["src_lengths"]
    found = translator.translate(src, lengths, max_len=12)
    beamed = translator.translate(src, lengths, beam_size=4, max_len=12)
    assert all(b.score >= g.score - 1e-5 for g, b in zip(found, beamed, strict=True))
    assert any(b.tokens != g.tokens for g, b in zip(found, beamed, strict=True))  # the beam did search
    for i, hypothesis in enumerate(beamed):
        if len(hypothesis.tokens) < 12:  # ended with <eos>: its score is its log-probability
            expected = sequence_log_prob(translator, src[i : i + 1], lengths[i : i + 1], hypothesis.tokens)
            assert hypothesis.score == pytest.approx(expected, abs=1e-4)
            if attention != "none":
                assert hypothesis.attention.shape == (len(hypothesis.tokens), int(lengths[i]))


@pytest.mark.parametrize("beam_size", [1, 3])
def test_translation_does_not_depend_on_the_batch_padding(beam_size):
    translator = model("lstm", "additive", bidirectional=True, seed=4)
    rows = [[5, 6, 7, 8, 9, 10, 11], [4, 12], [13, 5, 9]]
    batch = translator.translate(padded(rows, width=9), torch.tensor([7, 2, 3]), beam_size, 0.5, max_len=8)
    for row, together in zip(rows, batch, strict=True):
        alone = translator.translate(torch.tensor([row]), torch.tensor([len(row)]), beam_size, 0.5, 8)[0]
        assert alone.tokens == together.tokens
        assert alone.score == pytest.approx(together.score, abs=1e-5)
        assert torch.allclose(alone.attention, together.attention, atol=1e-6)


@pytest.mark.parametrize(
    ("cell", "attention", "bidirectional"),
    [
        ("lstm", "additive", False),
        ("gru", "multiplicative", False),
        ("gru", "additive", True),
    ],
)
def test_overfits_a_reversal_task(cell, attention, bidirectional):
    batch = reverse_task(30)
    translator = fit(model(cell, attention, bidirectional, hidden=32), batch, 100)
    found = translator.translate(batch["src"], batch["src_lengths"], max_len=8)
    expected = [row[1 : row.index(EOS)] for row in batch["tgt"].tolist()]
    accuracy = sum(h.tokens == e for h, e in zip(found, expected, strict=True)) / len(expected)
    assert accuracy >= 0.95, accuracy


def test_trainer_logs_token_averaged_losses_and_checkpoints_reload(tmp_path):
    batch = reverse_task(12)
    batches = [{k: v[i : i + 4] for k, v in batch.items()} for i in range(0, 12, 4)]
    loader = DataLoader(batches, batch_size=None)  # each item is a batch already
    translator = model(label_smoothing=0.1, teacher_forcing=0.8, scheduler="none")
    trainer = L.Trainer(
        max_epochs=2,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        default_root_dir=tmp_path,
        num_sanity_val_steps=0,
    )
    trainer.fit(translator, loader, loader)
    metrics = trainer.callback_metrics
    assert {"train/loss", "val/loss", "val/ppl"} <= set(metrics)
    losses = [translator._loss(b, 1.0, 0.0) for b in batches]
    expected = sum(loss * n for loss, n in losses) / sum(n for _, n in losses)
    expected = expected.detach()
    assert float(metrics["val/loss"]) == pytest.approx(float(expected), rel=1e-5)
    assert float(metrics["val/ppl"]) == pytest.approx(float(expected.exp()), rel=1e-5)
    trainer.test(translator, loader, verbose=False)
    assert float(trainer.callback_metrics["test/loss"]) == pytest.approx(float(expected), rel=1e-5)
    trainer.save_checkpoint(tmp_path / "last.ckpt")
    loaded = Seq2SeqTranslator.load_from_checkpoint(tmp_path / "last.ckpt")
    found = loaded.translate(batch["src"], batch["src_lengths"], beam_size=2, max_len=8)
    assert [h.tokens for h in found] == [
        h.tokens for h in translator.translate(batch["src"], batch["src_lengths"], beam_size=2, max_len=8)
    ]
