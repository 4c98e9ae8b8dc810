"""The translation task's data side (rnnlab.tasks.translate: text, pairs, split, vocab, preprocess, prepared,
datamodule): tokenization, reading the pairs, grouped split, vocabularies, the prepared folder, batches."""

from __future__ import annotations

import hashlib
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
from omegaconf import OmegaConf

from rnnlab.errors import ChecksumError, ConfigError, LayoutError
from rnnlab.tasks.translate.batches import TranslationDataModule
from rnnlab.tasks.translate.pairs import Pairs, fetch_pairs, read_pairs
from rnnlab.tasks.translate.prepared import PreparedTranslation
from rnnlab.tasks.translate.preprocess import DATA_RULES, prepare_from_config, prepare_pairs
from rnnlab.tasks.translate.split import grouped_split, sample_rows
from rnnlab.tasks.translate.text import detokenize, tokenize
from rnnlab.tasks.translate.vocab import TranslationVocabulary

ROOT = Path(__file__).resolve().parents[1]
SHARED_ZIP = ROOT.parent / "shared/data/fra-eng/fra-eng.zip"
SHARED_SHA256 = "161c93f18da3a7e6df611ed961426613260de8af06ccf8c79c977afe5135ac44"


def toy_pairs(n: int = 60) -> Pairs:
    """`n` English sentences, each with a word of its own (`wordK`); every fifth has three translations."""
    src, tgt = [], []
    for k in range(n):
        english = f"The cat {'sleeps' if k % 2 else 'eats'} near word{k}."
        versions = 3 if k % 5 == 0 else 1
        for v in range(versions):
            src.append(english)
            tgt.append(f"Le chat {'dort' if k % 2 else 'mange'} près de mot{k}{'!' * v}.")
    return Pairs(src, tgt)


def write_zip(path: Path, pairs: Pairs, extra_column: bool = False) -> Path:
    lines = [
        f"{s}\t{t}" + ("\tCC-BY 2.0 (France) Attribution: tatoeba.org #1" if extra_column else "")
        for s, t in zip(pairs.src, pairs.tgt, strict=True)
    ]
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("fra-eng/_about.txt", "about")
        zf.writestr("__MACOSX/fra-eng/._fra.txt", b"\x00\x05\x16\x07junk")
        zf.writestr("fra-eng/fra.txt", "\r\n".join(lines) + "\r\n")
    return path


@pytest.fixture(scope="module")
def prepared_dir(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("translate") / "prepared"
    prepare_pairs(toy_pairs(), val_fraction=0.2, test_fraction=0.2, seed=3).save(folder)
    return folder


def test_french_elisions_and_punctuation_become_tokens():
    assert tokenize("L'homme est là.", "fr") == ["l'", "homme", "est", "là", "."]
    sentence = "Jusqu'où ? Lorsqu'il dit qu'on n'y va pas, puisqu'elle s'en va…"
    expected = "jusqu' où ? lorsqu' il dit qu' on n' y va pas , puisqu' elle s' en va …"
    assert tokenize(sentence, "fr") == expected.split()
    # typographic apostrophe and narrow no-break space (as in the Tatoeba file); aujourd'hui stays whole
    sentence = "Aujourd\u2019hui, j\u2019ai vu M. Dupont\u202f!"
    expected = ["Aujourd'hui", ",", "j'", "ai", "vu", "M.", "Dupont", "!"]
    assert tokenize(sentence, "fr", lowercase=False) == expected


def test_english_clitics_come_off_with_their_apostrophe():
    expected = ["tom", "'s", "dog", "isn", "'t", "here", ",", "you", "'ve", "seen", "it", "!"]
    assert tokenize("Tom's dog isn't here, you've seen it!", "en") == expected
    with pytest.raises(ConfigError, match="allowed values: en, fr"):
        tokenize("Hallo.", "de")


@pytest.mark.parametrize(
    ("sentence", "lang"),
    [
        ("Qu'est-ce que c'est ? L'homme n'est pas là.", "fr"),
        ("Il a 3,5 kg, d'après « Le Monde ».", "fr"),
        ("I can't believe it's Tom's car, \"he\" said.", "en"),
        ("Don't worry; it costs $3.50 (or so).", "en"),
    ],
)
def test_detokenize_restores_the_sentence(sentence, lang):
    assert detokenize(tokenize(sentence, lang, lowercase=False), lang) == sentence


def test_pairs_read_from_a_zip_with_resource_forks_and_an_attribution_column(tmp_path):
    pairs = toy_pairs(5)
    for extra in (False, True):
        read = read_pairs(write_zip(tmp_path / f"p{extra}.zip", pairs, extra), "fra.txt")
        assert read == pairs
    text = tmp_path / "fra.txt"
    text.write_text("Go.\tVa !\n\nHi.\tSalut !\n", encoding="utf-8")
    assert read_pairs(text, "fra.txt") == Pairs(["Go.", "Hi."], ["Va !", "Salut !"])
    with pytest.raises(LayoutError, match="one file named 'deu.txt'"):
        read_pairs(tmp_path / "pFalse.zip", "deu.txt")
    text.write_text("Go.\tVa !\nno tab here\n", encoding="utf-8")
    with pytest.raises(LayoutError, match="line 2"):
        read_pairs(text, "fra.txt")


def test_fetch_takes_the_mirror_from_the_environment_and_checks_its_sha256(tmp_path):
    archive = write_zip(tmp_path / "mirror.zip", toy_pairs(3))
    digest = hashlib.sha256(archive.read_bytes()).hexdigest()
    source = {
        "kind": "anki",
        "uri": "http://example.invalid/fra-eng.zip",
        "sha256": "0" * 64,
        "member": "fra.txt",
    }
    env = {"RNNLAB_FRAENG_SOURCE": str(archive)}
    path, sha256, pairs = fetch_pairs(source, "fraeng", tmp_path, env, progress=False)
    assert (path, sha256, pairs.src) == (archive, digest, toy_pairs(3).src)
    with pytest.raises(ChecksumError):
        fetch_pairs(source, "fraeng", tmp_path, {**env, "RNNLAB_FRAENG_SHA256": "f" * 64}, progress=False)


def test_the_split_keeps_every_translation_of_a_sentence_together():
    pairs = toy_pairs()
    rows = grouped_split(pairs.src, 0.2, 0.2, seed=7)
    assert sorted(np.concatenate(list(rows.values())).tolist()) == list(range(len(pairs)))
    sources = {name: {pairs.src[i] for i in chosen} for name, chosen in rows.items()}
    assert not sources["train"] & sources["test"] and not sources["train"] & sources["val"]
    assert not sources["val"] & sources["test"]
    assert len(sources["test"]) == len(sources["val"]) == 12  # 20% of 60 sentences
    tripled = {name for name, chosen in rows.items() for i in chosen if pairs.src[i] == pairs.src[0]}
    assert len(tripled) == 1
    assert all(np.array_equal(rows[k], grouped_split(pairs.src, 0.2, 0.2, seed=7)[k]) for k in rows)
    with pytest.raises(ConfigError, match="val_fraction"):
        grouped_split(pairs.src, 1.0, 0.2, seed=7)


def test_max_pairs_takes_a_seeded_sample_not_the_head():
    sample = sample_rows(1000, 10, seed=1)
    assert len(sample) == 10 and sample.max() > 10 and np.all(np.diff(sample) > 0)
    assert np.array_equal(sample, sample_rows(1000, 10, seed=1))
    assert len(sample_rows(5, 10, seed=1)) == 5


def test_vocabularies_come_from_train_only(prepared_dir):
    data = PreparedTranslation.load(prepared_dir)
    words = set(data.src_vocab.tokens)
    train_words = {f"word{k}" for k in range(60)} & words
    assert train_words and all(f"word{k}" not in words for k in _test_sentence_numbers(data))
    test = data.splits["test"]
    oov_rows = [i for i in range(len(test)) if TranslationVocabulary.OOV in test.source(i)]
    assert len(oov_rows) == len(test)  # every test sentence has its own word, unseen in train
    assert data.facts["oov_rate"]["test"]["src"] > 0
    assert data.src_vocab.tokens[:4] == ["<pad>", "<oov>", "<bos>", "<eos>"]


def _test_sentence_numbers(data: PreparedTranslation) -> set[int]:
    return {int(s.split("word")[1].rstrip(".")) for s in data.texts["test"][0]}


def test_max_len_drops_long_training_pairs_only():
    pairs = Pairs(
        [
            f"Sentence number {k} is {'quite a lot longer than' if k % 4 == 0 else ''} this."
            for k in range(40)
        ],
        [f"Phrase {k}." for k in range(40)],
    )
    full = prepare_pairs(pairs, val_fraction=0.2, test_fraction=0.2, max_len=None)
    cut = prepare_pairs(pairs, val_fraction=0.2, test_fraction=0.2, max_len=7)
    long_train = int(np.count_nonzero(full.splits["train"].src_lengths > 7))
    assert long_train > 0 and cut.facts["dropped"]["too_long"] == long_train
    assert cut.facts["pairs"]["train"] == full.facts["pairs"]["train"] - long_train
    assert cut.facts["pairs"]["test"] == full.facts["pairs"]["test"]  # held-out pairs are never filtered
    assert cut.splits["train"].src_lengths.max() <= 7
    with pytest.raises(ConfigError, match="data.max_len"):
        prepare_pairs(pairs, max_len=0)


def test_prepared_folder_round_trip_keeps_raw_references_aligned(prepared_dir):
    data = PreparedTranslation.load(prepared_dir)
    assert data.facts["pairs"]["train"] + data.facts["pairs"]["val"] + data.facts["pairs"]["test"] == 84
    assert data.settings == {"languages": {"src": "en", "tgt": "fr"}, "lowercase": True, "max_len": 50}
    sources, references = data.texts["val"]
    known = set(data.tgt_vocab.tokens)
    for row, reference in enumerate(references):
        words = data.tgt_vocab.decode(data.splits["val"].target(row))
        assert words == [word if word in known else "<oov>" for word in tokenize(reference, "fr")]
        assert sources[row].startswith("The cat")
    with pytest.raises(LayoutError, match="not prepared translation data"):
        PreparedTranslation.load(prepared_dir.parent)


def test_batches_pad_sources_and_wrap_targets_in_bos_eos(prepared_dir):
    dm = TranslationDataModule(prepared_dir, batch_size=8)
    val = dm.data.splits["val"]
    batches = list(dm.val_dataloader())
    assert torch.cat([b["index"] for b in batches]).tolist() == list(range(len(val)))  # in row order
    batch = batches[0]
    assert set(batch) == {"src", "src_lengths", "tgt", "index"}
    assert all(value.dtype == torch.int64 for value in batch.values())
    for b, row in enumerate(batch["index"].tolist()):
        n, m = len(val.source(row)), len(val.target(row))
        assert batch["src_lengths"][b] == n >= 1
        assert batch["src"][b, :n].tolist() == val.source(row).tolist() and not batch["src"][b, n:].any()
        assert batch["tgt"][b, : m + 2].tolist() == [2, *val.target(row).tolist(), 3]
        assert not batch["tgt"][b, m + 2 :].any()
    assert batch["src"].shape[1] == batch["src_lengths"].max()
    assert batch["tgt"].shape[1] == max(len(val.target(r)) for r in batch["index"].tolist()) + 2


@pytest.mark.parametrize("bucket", [True, False])
def test_training_resumes_mid_epoch_on_the_same_batches(prepared_dir, bucket):
    dm = TranslationDataModule(prepared_dir, batch_size=4, bucket=bucket, seed=5)
    loader = dm.train_dataloader()
    loader.batch_sampler.set_epoch(2)
    epoch2 = [b["index"].tolist() for b in loader]
    loader.batch_sampler.set_epoch(3)
    assert [b["index"].tolist() for b in loader] != epoch2  # shuffled again
    dm.load_state_dict({"epoch": 2, "batches": 3})
    assert [b["index"].tolist() for b in dm.train_dataloader()] == epoch2[3:]
    assert sorted(sum(epoch2, [])) == list(range(len(dm.data.splits["train"])))


def test_the_data_config_holds_every_prepare_setting():
    cfg = OmegaConf.load(ROOT / "conf/data/fraeng.yaml")
    data = prepare_from_config(toy_pairs(), cfg, progress=False)
    assert data.settings == {"languages": {"src": "en", "tgt": "fr"}, "lowercase": True, "max_len": 50}
    assert data.facts["source_sentences"]["test"] == 6  # 10% of 60
    for key, rule in DATA_RULES.items():
        assert rule.test(OmegaConf.select(cfg, key.removeprefix("data."))), key
        assert not any(rule.test(bad) for bad in rule.bad), key


@pytest.mark.skipif(not SHARED_ZIP.is_file(), reason=f"offline copy not found at {SHARED_ZIP}")
def test_the_shared_tatoeba_zip_reads_and_prepares_a_sample():
    assert hashlib.sha256(SHARED_ZIP.read_bytes()).hexdigest() == SHARED_SHA256
    pairs = read_pairs(SHARED_ZIP, "fra.txt")
    assert len(pairs) == 167_130 and pairs.src[0] == "Go." and pairs.tgt[0] == "Va !"
    data = prepare_pairs(pairs, max_pairs=1500, seed=0)
    facts = data.facts
    assert facts["dropped"]["max_pairs"] == 167_130 - 1500
    assert sum(facts["pairs"].values()) + facts["dropped"]["too_long"] + facts["dropped"]["empty"] == 1500
    assert max(data.splits["test"].src_lengths) > 8  # a sample, not the file's short head
