"Tests of blt_repro.data: the embedded corpus (checksums, pinned splits), local/HF loading errors, packing."
import hashlib
import random
import shutil

import pytest
import torch

from blt_repro.core import data_dir
from blt_repro.data import (CORPORA, SPLITS, CorpusCorruptedError, DatasetUnavailableError, batches,
                            corpus_table, load_corpus, load_corpus_records, load_manifest, load_texts,
                            pack_documents, split_of, truncate_to_bytes, verify_file)
from blt_repro.tokenizer import BOE_ID, BOS_ID, EOS_ID, ByteTokenizer

# (docs, UTF-8 bytes) per corpus and split, pinned: the splits are fixed forever. A rebuilt corpus that changes
# any of these is a different corpus and must say so here (and in the notebooks that quote numbers).
PINNED = {
    ("en", "train"): (1374, 8772013), ("en", "validation"): (77, 459385), ("en", "test"): (84, 572212),
    ("multilingual", "train"): (474, 6276266), ("multilingual", "validation"): (28, 437983),
    ("multilingual", "test"): (30, 380853),
    ("code", "train"): (165, 1568299), ("code", "validation"): (15, 181133), ("code", "test"): (15, 164937),
}
FILE_CORPORA = ("en", "multilingual", "code")


def test_manifest_checksums_and_sizes():
    m = load_manifest()
    assert sorted(m["files"]) == sorted(FILE_CORPORA)
    total = 0
    for name, e in m["files"].items():
        path = data_dir() / f"{name}.jsonl.xz"
        verify_file(path, e["sha256"])
        assert hashlib.sha256(path.read_bytes()).hexdigest() == e["sha256"]
        assert path.stat().st_size == e["compressed_bytes"]
        assert e["sources"] and all(len(p["sha256"]) == 64 and p["version"] for p in e["sources"])
        assert e["licence"] and e["split_rule"]
        total += e["compressed_bytes"]
    assert total < 10_000_000
    assert m["files"]["en"]["text_bytes"] >= 5_000_000


def test_pinned_split_counts():
    got = {(r["corpus"], r["split"]): (r["docs"], r["bytes"]) for r in corpus_table() if r["corpus"] != "default"}
    assert got == PINNED
    m = load_manifest()
    for (name, split), (docs, nbytes) in PINNED.items():
        assert m["files"][name]["splits"][split] == {"docs": docs, "bytes": nbytes}
        assert len(load_corpus(name, split)) == docs
        assert sum(len(d.encode()) for d in load_corpus(name, split)) == nbytes


def test_splits_disjoint_stable_and_clean():
    for name in FILE_CORPORA:
        ids = {s: [r["id"] for r in load_corpus_records(name, s)] for s in SPLITS}
        sets = {s: set(v) for s, v in ids.items()}
        assert all(len(sets[s]) == len(ids[s]) for s in SPLITS)
        assert not (sets["train"] & sets["validation"] or sets["train"] & sets["test"]
                    or sets["validation"] & sets["test"])
        for s in SPLITS:
            for r in load_corpus_records(name, s):
                assert split_of(name, r["id"]) == s
                assert "\x00" not in r["text"] and r["text"]
                assert len(r["text"].encode()) == r["bytes"]


def test_default_is_interleaved_union():
    for s in SPLITS:
        d = load_corpus_records("default", s)
        assert sorted(r["id"] for r in d) == sorted(r["id"] for n in FILE_CORPORA for r in load_corpus_records(n, s))
        assert [r["key"] for r in d] == sorted(r["key"] for r in d)
    head = {r["corpus"] for r in load_corpus_records("default", "train")[:100]}
    assert head == set(FILE_CORPORA)


def test_metadata_for_scripts():
    recs = [r for s in SPLITS for r in load_corpus_records("multilingual", s)]
    assert len(recs) == 532
    assert all(r["script"] and r["lang"] and r["iso6393"] for r in recs)
    scripts = {r["script"] for r in recs}
    assert {"Latin", "Cyrillic", "Han", "Arabic", "Devanagari", "Japanese", "Greek", "Hangul"} <= scripts
    eng = next(r for r in recs if r["code"] == "eng")
    assert eng["script"] == "Latin" and eng["text"].startswith("Universal Declaration of Human Rights")


def test_max_bytes_deterministic():
    full = load_corpus("en", "validation")
    a = load_corpus("en", "validation", max_bytes=123_457)
    assert a == load_corpus("en", "validation", max_bytes=123_457)
    assert sum(len(d.encode()) for d in a) == 123_457
    assert a[:-1] == full[:len(a) - 1] and full[len(a) - 1].startswith(a[-1])
    assert truncate_to_bytes(["日本語"], 4) == ["日"]       # cut at a character boundary, never inside one
    with pytest.raises(ValueError, match="max_bytes"):
        load_corpus("en", max_bytes=-1)


def test_cache_returns_copies():
    r = load_corpus_records("code", "test")
    r[0]["text"] = "changed"
    assert load_corpus_records("code", "test")[0]["text"] != "changed"


def test_corrupted_and_missing_files(tmp_path):
    for f in data_dir().iterdir():
        if f.is_file(): shutil.copy(f, tmp_path / f.name)
    raw = bytearray((tmp_path / "code.jsonl.xz").read_bytes()); raw[500] ^= 1
    (tmp_path / "code.jsonl.xz").write_bytes(bytes(raw))
    with pytest.raises(CorpusCorruptedError, match=r"corrupted.*git checkout data/"):
        load_corpus_records("code", "train", data_path=tmp_path)
    (tmp_path / "en.jsonl.xz").unlink()
    with pytest.raises(FileNotFoundError, match="git checkout data/"):
        load_corpus_records("en", "train", data_path=tmp_path)
    assert len(load_corpus_records("multilingual", "test", data_path=tmp_path)) == 30   # the intact file loads


def test_bad_names():
    with pytest.raises(ValueError, match="unknown corpus"):
        load_corpus("klingon")
    with pytest.raises(ValueError, match="unknown split"):
        load_corpus("en", "dev")
    assert set(CORPORA) == {"en", "multilingual", "code", "default"}


def test_load_texts_local(tmp_path):
    (tmp_path / "b.txt").write_text("second")
    (tmp_path / "d").mkdir(); (tmp_path / "d" / "a.txt").write_text("first ü")
    (tmp_path / "x.md").write_text("markdown")
    assert load_texts(tmp_path / "b.txt") == ["second"]
    assert load_texts(str(tmp_path)) == ["second", "first ü"]   # sorted paths: b.txt < d/a.txt
    assert load_texts(tmp_path, pattern="*.md") == ["markdown"]
    assert load_texts("en", "test") == load_corpus("en", "test")
    assert load_texts(tmp_path, max_bytes=3) == ["sec"]


def test_load_texts_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="no such"):
        load_texts(tmp_path / "nope.txt")
    with pytest.raises(FileNotFoundError):
        load_texts("./no/such/folder")
    (tmp_path / "empty.txt").write_bytes(b"")
    with pytest.raises(ValueError, match="empty"):
        load_texts(tmp_path / "empty.txt")
    (tmp_path / "bad.txt").write_bytes(b"ok so far \xff\xfe then junk")
    with pytest.raises(ValueError, match=r"bad\.txt.*not valid UTF-8: byte offset 10"):
        load_texts(tmp_path / "bad.txt")
    (tmp_path / "nul.txt").write_bytes(b"0123456\x00")
    with pytest.raises(ValueError, match="NUL byte at byte offset 7"):
        load_texts(tmp_path / "nul.txt")
    (tmp_path / "sub").mkdir()
    with pytest.raises(ValueError, match="no files matching"):
        load_texts(tmp_path / "sub")
    with pytest.raises(ValueError, match="no splits"):
        load_texts(tmp_path / "bad.txt", split="validation")


def test_hf_offline_error(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    for name in ("LTCB/enwik8", "enwik8"):
        with pytest.raises(DatasetUnavailableError, match=rf"'{name}'.*offline.*local copy"):
            load_texts(name)
    with pytest.raises(ConnectionError):            # DatasetUnavailableError is a ConnectionError
        load_texts("some_user/some_dataset", split="train")


def naive_pack(docs, seq_len, drop_last=False):
    stream = [i for d in docs for i in ByteTokenizer().encode(d)]
    rows = [stream[i:i + seq_len] for i in range(0, len(stream), seq_len)]
    if rows and len(rows[-1]) < seq_len:
        if drop_last: rows.pop()
        else: rows[-1] = rows[-1] + [BOE_ID] * (seq_len - len(rows[-1]))
    return rows


def unpack(rows):
    out, cur = [], []
    for i in rows.flatten().tolist():
        if i == EOS_ID: out.append(bytes(cur).decode("utf-8")); cur = []
        elif i >= 4: cur.append(i - 4)
    return out


def random_docs(rng, n):
    alphabet = "abc xyz\n\tÉé—ελ日本🙂"
    return ["".join(rng.choice(alphabet) for _ in range(rng.randrange(0, 40))) for _ in range(n)]


def test_pack_matches_naive_and_round_trips():
    rng = random.Random(0)
    for trial in range(50):
        docs = random_docs(rng, rng.randrange(1, 6))
        seq_len = rng.randrange(2, 50)
        x = pack_documents(docs, seq_len)
        assert x.dtype == torch.long and x.shape[1] == seq_len
        assert x.tolist() == naive_pack(docs, seq_len)
        assert unpack(x) == docs
        assert (x == BOS_ID).sum() == len(docs) == (x == EOS_ID).sum()
        n_ids = sum(len(d.encode()) + 2 for d in docs)
        if n_ids >= seq_len:
            assert pack_documents(docs, seq_len, drop_last=True).tolist() == naive_pack(docs, seq_len, True)
        b = rng.randrange(1, 5)
        xb = pack_documents(docs, seq_len, b)
        assert xb.shape[0] % b == 0 and xb[: x.shape[0]].equal(x) and (xb[x.shape[0]:] == BOE_ID).all()


def test_pack_real_corpus_round_trip():
    docs = load_corpus("default", "validation", max_bytes=200_000)
    x = pack_documents(docs, 1024, 4)
    assert x.shape[0] % 4 == 0
    assert unpack(x) == docs


def test_pack_errors():
    with pytest.raises(ValueError, match="seq_len"):
        pack_documents(["abc"], 1)
    with pytest.raises(ValueError, match="no documents"):
        pack_documents([], 8)
    with pytest.raises(ValueError, match="NUL"):
        pack_documents(["ok", "bad\x00"], 8)
    with pytest.raises(TypeError, match="list of strings"):
        pack_documents("abc", 8)
    with pytest.raises(ValueError, match="UTF-8"):
        pack_documents(["lone \ud800"], 8)
    with pytest.raises(ValueError, match="not enough"):
        pack_documents(["abc"], 8, drop_last=True)


def test_batches():
    docs = load_corpus("en", "validation", max_bytes=30_000)
    rows = pack_documents(docs, 128)
    plain = list(batches(docs, 128, 8))
    assert torch.cat(plain).equal(rows)
    sh = list(batches(docs, 128, 8, shuffle=True, seed=3))
    assert [b.tolist() for b in sh] == [b.tolist() for b in batches(docs, 128, 8, shuffle=True, seed=3)]
    assert sorted(map(tuple, torch.cat(sh).tolist())) == sorted(map(tuple, rows.tolist()))
    assert not torch.cat(sh).equal(rows)
    assert all(b.shape == (8, 128) for b in batches(docs, 128, 8, drop_last=True))
    two = list(batches(docs, 128, 8, shuffle=True, seed=3, epochs=2))
    assert len(two) == 2 * len(sh) and not torch.cat(two[:len(sh)]).equal(torch.cat(two[len(sh):]))


def test_hf_column_extraction(monkeypatch):
    "The happy path of load_hf_texts, with datasets.load_dataset replaced by an in-memory dataset (no network)."
    import datasets
    import blt_repro.data as data
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.delenv("HF_DATASETS_OFFLINE", raising=False)
    monkeypatch.setattr(data, "_hub_unreachable", lambda timeout=3.0: None)
    calls = []
    def fake_load(name, config=None, split=None):
        calls.append((name, config, split))
        return datasets.Dataset.from_dict({"body": ["first doc", "", "second doc"], "n": [1, 2, 3]})
    monkeypatch.setattr(datasets, "load_dataset", fake_load)
    assert load_texts("someone/corpus", split="validation") == ["first doc", "second doc"]   # the one string column
    assert calls == [("someone/corpus", None, "validation")]
    assert load_texts("someone/corpus", max_bytes=12) == ["first doc", "sec"]
    monkeypatch.setattr(datasets, "load_dataset", lambda *a, **k: datasets.Dataset.from_dict({"a": ["x"], "b": ["y"]}))
    with pytest.raises(ValueError, match="text_field"):
        load_texts("someone/corpus")
    monkeypatch.setattr(datasets, "load_dataset",
                        lambda *a, **k: datasets.Dataset.from_dict({"text": ["bad\x00"]}))
    with pytest.raises(ValueError, match="NUL"):
        load_texts("someone/corpus")
