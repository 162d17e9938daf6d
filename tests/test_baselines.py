"""Baselines: byte/token transformer configs, shapes and causality; byte-level BPE (exact round trips, byte lengths,
cache, save/load, data-pipeline integration); patchers for BLT (lengths sum to S+1, errors, causality);
MegaByte-/SpaceByte-style configs."""
import random

import numpy as np
import pytest
import torch

import blt_repro.baselines as bl
from blt_repro.baselines import (BPETokenizer, ByteTransformer, ByteTransformerConfig, TokenTransformer,
                                 TokenTransformerConfig, bpe_cache_dir, megabyte_config, spacebyte_config,
                                 train_bpe_tokenizer)
from blt_repro.patching import PatcherConfig, patch_lengths
from blt_repro.data import encode_documents, load_corpus, pack_documents
from blt_repro.model import BLT, BLTConfig
from blt_repro.tokenizer import EOS_ID, OFFSET, ByteTokenizer

TOK = ByteTokenizer()
SPECIAL_CASES = ["", " ", "   leading spaces", "trailing  \n\n", "\n", "tabs\tand\r\nCRLF", "naïve café — Ελληνικά",
                 "日本語の文章です。", "emoji 🙂👍🏽 family 👨‍👩‍👧 flag 🇫🇷", "literal <eos> <bos> <pad>", "\x00\x7f\u00a0",
                 "a" * 500, " " * 40 + "x"]


def random_text(rng: random.Random, n: int) -> str:
    "Random code points from every plane (no surrogates), mixed with ASCII, whitespace runs and CJK."
    def one():
        k = rng.randrange(5)
        if k == 0: return chr(rng.randint(32, 126))
        if k == 1: return rng.choice([" ", "  ", "\n", "\t", "\r\n"])
        if k == 2: return chr(rng.randint(0x4E00, 0x9FFF))
        if k == 3: return rng.choice(["🙂", "👍🏽", "👨‍👩‍👧"])
        return chr(rng.choice([rng.randint(1, 0xD7FF), rng.randint(0xE000, 0x10FFFF)]))
    return "".join(one() for _ in range(n))


@pytest.fixture(scope="module")
def train_docs():
    return load_corpus("en", "train", max_bytes=300_000)


@pytest.fixture(scope="module")
def bpe(train_docs, tmp_path_factory):
    return train_bpe_tokenizer(train_docs, vocab_size=1024, cache_dir=tmp_path_factory.mktemp("bpe"))


# ---------------------------------------------------------------------------------------------------- BPE

def test_bpe_round_trip(bpe):
    rng = random.Random(0)
    texts = SPECIAL_CASES + load_corpus("en", "validation", max_bytes=50_000)[:10] + \
        [random_text(rng, rng.randint(1, 80)) for _ in range(300)]
    for s in texts:
        ids = bpe.encode(s)
        assert bpe.decode(ids) == s
        assert ids[0] == bpe.bos_id and ids[-1] == bpe.eos_id
        assert bpe.bos_id not in ids[1:-1] and bpe.eos_id not in ids[1:-1] and bpe.pad_id not in ids
        assert bpe.encode(s, add_bos=False, add_eos=False) == ids[1:-1]


def test_bpe_round_trip_hypothesis(bpe):
    hypothesis = pytest.importorskip("hypothesis")
    st = hypothesis.strategies

    @hypothesis.settings(max_examples=200, deadline=None, derandomize=True, database=None)
    @hypothesis.given(st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=60))
    def check(s):
        ids = bpe.encode(s)
        assert bpe.decode(ids) == s
        assert int(bpe.byte_lengths[ids].sum()) == len(s.encode("utf-8"))
    check()


def test_bpe_byte_lengths(bpe, train_docs):
    assert bpe.byte_lengths.dtype == np.int64 and bpe.byte_lengths.shape == (bpe.vocab_size,)
    assert bpe.byte_lengths[[bpe.pad_id, bpe.bos_id, bpe.eos_id]].tolist() == [0, 0, 0]
    assert (bpe.byte_lengths[3:] >= 1).all()
    for i in range(bpe.vocab_size): assert bpe.byte_lengths[i] == len(bpe.decode_bytes([i]))
    for s in SPECIAL_CASES + train_docs[:5]:
        assert int(bpe.byte_lengths[bpe.encode(s)].sum()) == len(s.encode("utf-8"))


def test_bpe_bytes_per_token(bpe, train_docs):
    docs = train_docs[:20]
    n_tok = sum(len(bpe.encode(d)) - 2 for d in docs)
    assert bpe.bytes_per_token(docs) == pytest.approx(sum(len(d.encode()) for d in docs) / n_tok)
    assert 1.5 < bpe.bytes_per_token(docs) < 4.0


def test_bpe_vocab_and_specials(bpe):
    assert bpe.vocab_size == 1024 and (bpe.pad_id, bpe.bos_id, bpe.eos_id) == (0, 1, 2)
    assert len({t for t in bpe.token_bytes if len(t) == 1}) == 256      # every byte has a token


def test_bpe_cache_and_save_load(train_docs, tmp_path, monkeypatch):
    a = train_bpe_tokenizer(train_docs[:50], vocab_size=300, cache_dir=tmp_path)
    files = list(tmp_path.glob("bpe-300-*.json"))
    assert len(files) == 1
    monkeypatch.setattr(bl, "_train_bpe", lambda *a, **k: pytest.fail("retrained instead of reading the cache"))
    b = train_bpe_tokenizer(train_docs[:50], vocab_size=300, cache_dir=tmp_path)
    assert a.token_bytes == b.token_bytes
    c = BPETokenizer.load(a.save(tmp_path / "sub" / "copy.json"))
    assert c.token_bytes == a.token_bytes and c.encode("hello <eos> world") == a.encode("hello <eos> world")
    with pytest.raises(FileNotFoundError): BPETokenizer.load(tmp_path / "missing.json")


def test_bpe_cache_dir_env(monkeypatch, tmp_path):
    monkeypatch.setenv("BLT_CACHE_DIR", str(tmp_path))
    assert bpe_cache_dir() == tmp_path / "bpe"
    monkeypatch.delenv("BLT_CACHE_DIR")
    assert bpe_cache_dir().parts[-2:] == (".cache", "bpe")


def test_bpe_errors(bpe, train_docs):
    with pytest.raises(ValueError, match="UTF-8"): bpe.encode("lone \ud800")
    with pytest.raises(TypeError, match="not str"): bpe.encode(b"bytes")
    with pytest.raises(ValueError, match="ids must be in"): bpe.decode([5, 10**6])
    with pytest.raises(ValueError, match=">= 259"): train_bpe_tokenizer(train_docs, vocab_size=258)
    with pytest.raises(ValueError, match="min_frequency"): train_bpe_tokenizer(train_docs, min_frequency=0)
    with pytest.raises(TypeError, match="list of strings"): train_bpe_tokenizer("one string")
    with pytest.raises(ValueError, match="no text"): train_bpe_tokenizer([])


def test_bpe_with_data_pipeline(bpe, train_docs):
    docs = train_docs[:3]
    stream = encode_documents(docs, tokenizer=bpe)
    assert stream.tolist() == [i for d in docs for i in bpe.encode(d)]
    rows = pack_documents(docs, seq_len=64, tokenizer=bpe)
    assert rows.shape[1] == 64 and rows.flatten()[len(stream):].eq(bpe.pad_id).all()
    assert int(bpe.byte_lengths[stream].sum()) == sum(len(d.encode()) for d in docs)


# ---------------------------------------------------------------------------------------------------- models

@pytest.mark.parametrize("cls, kwargs, msg", [
    (ByteTransformerConfig, {"vocab_size": 256}, "260"), (ByteTransformerConfig, {"dim": 30, "n_heads": 4}, "divisible"),
    (ByteTransformerConfig, {"window": 0}, "window"), (ByteTransformerConfig, {"n_layers": 0}, "n_layers"),
    (ByteTransformerConfig, {"document_mask": "yes"}, "document_mask"), (ByteTransformerConfig, {"ffn_hidden": 0}, "ffn_hidden"),
    (TokenTransformerConfig, {"vocab_size": 10, "eos_id": 10}, "eos_id"), (TokenTransformerConfig, {"vocab_size": 1}, "vocab_size")])
def test_config_errors(cls, kwargs, msg):
    with pytest.raises(ValueError, match=msg): cls(**kwargs)


def test_config_from_dict_and_tokenizer(bpe):
    with pytest.raises(ValueError, match="windw"): ByteTransformerConfig.from_dict({"windw": 3})
    cfg = ByteTransformerConfig(window=16, document_mask=False)
    assert ByteTransformerConfig.from_dict(cfg.to_dict()) == cfg
    tc = TokenTransformerConfig.for_tokenizer(bpe, dim=32, n_heads=2)
    assert (tc.vocab_size, tc.eos_id, tc.dim) == (bpe.vocab_size, bpe.eos_id, 32)
    with pytest.raises(TypeError, match="ByteTransformerConfig"): ByteTransformer(tc)
    with pytest.raises(TypeError, match="TokenTransformerConfig"): TokenTransformer(ByteTransformerConfig.tiny())


def test_shapes_and_dtypes():
    torch.manual_seed(0)
    x = torch.randint(0, 260, (2, 13))
    assert ByteTransformer(ByteTransformerConfig.tiny(window=4))(x).shape == (2, 13, 260)
    m = TokenTransformer(TokenTransformerConfig.tiny(vocab_size=300))
    out = m(torch.randint(0, 300, (3, 7)))
    assert out.shape == (3, 7, 300) and out.dtype == torch.float32
    with pytest.raises(ValueError, match="token ids"): m(torch.full((1, 3), 300))
    with pytest.raises(ValueError, match=r"\[B, S\]"): m(torch.zeros(5, dtype=torch.long))


def _suffix_change(model, x, t, vocab, seed):
    "Max change of the logits at positions <= t when every id after t is replaced at random."
    y = x.clone()
    y[:, t + 1:] = torch.randint(0, vocab, y[:, t + 1:].shape, generator=torch.Generator().manual_seed(seed))
    with torch.no_grad(): return (model(x)[:, :t + 1] - model(y)[:, :t + 1]).abs().max().item()


@pytest.mark.parametrize("kind, kwargs", [("byte", {}), ("byte", {"window": 4}), ("byte", {"document_mask": False}),
                                          ("byte", {"window": 3, "document_mask": False}), ("token", {}), ("token", {"window": 5})])
def test_causality(kind, kwargs):
    torch.manual_seed(0)
    if kind == "byte": model, vocab = ByteTransformer(ByteTransformerConfig.tiny(**kwargs)).eval(), 260
    else: model, vocab = TokenTransformer(TokenTransformerConfig.tiny(vocab_size=300, **kwargs)).eval(), 300
    x = torch.randint(3, vocab, (2, 24), generator=torch.Generator().manual_seed(1))
    x[:, 9] = model.cfg.eos_id
    assert max(_suffix_change(model, x, t, vocab, t) for t in range(0, 23, 2)) < 1e-5


def test_window_and_document_masks():
    torch.manual_seed(0)
    x = torch.randint(4, 260, (1, 20), generator=torch.Generator().manual_seed(0))
    x[0, 7] = EOS_ID
    doc = ByteTransformer(ByteTransformerConfig.tiny()).eval()
    y = x.clone(); y[0, :7] = 100                              # another first document
    with torch.no_grad(): assert torch.allclose(doc(x)[:, 8:], doc(y)[:, 8:], atol=1e-5)
    win = ByteTransformer(ByteTransformerConfig.tiny(n_layers=1, window=3, document_mask=False)).eval()
    y = x.clone(); y[0, 10] = 200                              # with one layer and W=3, position 10 reaches only 10..12
    with torch.no_grad(): d = (win(x) - win(y)).abs().amax(-1)[0]
    assert d[:10].max() < 1e-6 and d[13:].max() < 1e-6 and d[10:13].min() > 0


# ---------------------------------------------------------------------------------------------------- patchers

def fake_entropies(tokens):
    "A causal stand-in for an entropy model: position i depends on byte i only."
    return ((tokens * 7919) % 13).float() / 4


@pytest.mark.parametrize("pcfg", [PatcherConfig("static", patch_size=4), PatcherConfig("static", patch_size=1),
                                  PatcherConfig("static", patch_size=5, max_patch_length=2), PatcherConfig("space"),
                                  PatcherConfig("space", max_patch_length=3), PatcherConfig("entropy", threshold=1.5),
                                  PatcherConfig("entropy", patch_size=4.5), PatcherConfig("entropy", threshold=0.5, max_patch_length=2)])
@pytest.mark.parametrize("S", [1, 2, 7, 50])
def test_patch_lengths_sums(pcfg, S):
    x = torch.randint(4, 260, (3, S), generator=torch.Generator().manual_seed(S))
    x[:, 0] = 1
    L = patch_lengths(x, pcfg, fake_entropies(x))
    assert L.dtype == torch.long and L.shape[0] == 3
    assert L.sum(1).tolist() == [S + 1] * 3 and L[:, 0].tolist() == [1] * 3
    assert ((L[:, 1:] == 0) | (L[:, :-1] > 0)).all()           # zeros only as right padding
    if pcfg.max_patch_length: assert L.max() <= pcfg.max_patch_length
    if pcfg.mode == "static" and S > 2 and not pcfg.max_patch_length: assert L[0, 1] == min(pcfg.patch_size, S)


def test_patch_lengths_space_rule():
    x = torch.tensor([TOK.encode("ab cd  ef", add_eos=False)])
    # <bos> | a b ' ' | c d ' ' | ' ' e f + next byte: a run of spaces counts once, the extra space joins the next word
    assert patch_lengths(x, PatcherConfig("space")).tolist() == [[1, 3, 3, 4]]


@pytest.mark.parametrize("kwargs, msg", [
    (dict(mode="bpe"), "mode must be one of"), (dict(mode="static"), "integer patch_size"),
    (dict(mode="static", patch_size=4.5), "integer patch_size"), (dict(mode="static", patch_size=4, threshold=1.0), "threshold"),
    (dict(mode="space", patch_size=6), "leave both None"), (dict(mode="entropy"), "exactly one of"),
    (dict(mode="entropy", threshold=1.0, patch_size=4), "exactly one of"), (dict(mode="entropy", threshold=float("nan")), "threshold"),
    (dict(mode="space", max_patch_length=0), "max_patch_length"), (dict(mode="static", patch_size=0), "patch_size")])
def test_patcher_config_errors(kwargs, msg):
    with pytest.raises(ValueError, match=msg): PatcherConfig(**kwargs)


def test_patch_lengths_errors():
    x = torch.randint(4, 260, (2, 10))
    with pytest.raises(ValueError, match="unknown PatcherConfig fields"): PatcherConfig.from_dict({"mode": "space", "size": 1})
    with pytest.raises(ValueError, match="needs entropies"): patch_lengths(x, PatcherConfig("entropy", threshold=1.0))
    with pytest.raises(ValueError, match="shaped like tokens"):
        patch_lengths(x, PatcherConfig("entropy", threshold=1.0), torch.zeros(2, 9))
    with pytest.raises(ValueError, match=r"\[B, S\]"): patch_lengths(x[0], PatcherConfig("space"))
    with pytest.raises(TypeError, match="PatcherConfig"): patch_lengths(x, {"mode": "space"})
    assert PatcherConfig.from_dict({"mode": "static", "patch_size": 4.0}).patch_size == 4


def test_factories():
    bcfg, pcfg = megabyte_config(6, d_local=32, d_global=64)
    assert (pcfg.mode, pcfg.patch_size) == ("static", 6)
    assert not bcfg.cross_attn_encoder and not bcfg.cross_attn_decoder and bcfg.hash is None and bcfg.d_local == 32
    bcfg, pcfg = spacebyte_config(max_patch_length=16, cross_attn_decoder=True)
    assert (pcfg.mode, pcfg.max_patch_length) == ("space", 16) and bcfg.cross_attn_decoder
    with pytest.raises(ValueError, match="unknown BLTConfig fields"): megabyte_config(4, d_locall=32)


SMALL = dict(d_local=32, d_global=64, n_layers_global=1, n_layers_decoder=1, n_heads_local=2, n_heads_global=2,
             local_window=16)


@pytest.mark.parametrize("setup", ["megabyte", "spacebyte", "blt-static", "blt-space", "blt-entropy"])
def test_blt_with_patchers_causal(setup):
    bcfg, pcfg = {"megabyte": megabyte_config(3, **SMALL), "spacebyte": spacebyte_config(**SMALL),
                  "blt-static": (BLTConfig.tiny(**SMALL), PatcherConfig("static", patch_size=4)),
                  "blt-space": (BLTConfig.tiny(**SMALL), PatcherConfig("space", max_patch_length=5)),
                  "blt-entropy": (BLTConfig.tiny(**SMALL), PatcherConfig("entropy", threshold=1.5))}[setup]
    torch.manual_seed(0)
    model = BLT(bcfg).eval()
    rows = [TOK.encode("The cat sat, then it ran off to see the big 42 dogs!", add_eos=False),
            TOK.encode("a mid-document row: no BOS first, an end.", add_bos=False) + TOK.encode("Next one")]
    x = torch.tensor([r[:40] for r in rows])                   # [2, 40]; row 2 starts mid-document, holds an EOS
    run = lambda ids: model(ids, patch_lengths(ids, pcfg, fake_entropies(ids)))
    with torch.no_grad():
        out = run(x)
        assert out.shape == (2, 40, 260) and torch.isfinite(out).all()
        for t in range(0, 39, 3):
            y = x.clone()
            y[:, t + 1:] = torch.randint(OFFSET, 260, y[:, t + 1:].shape, generator=torch.Generator().manual_seed(t))
            assert (run(x)[:, :t + 1] - run(y)[:, :t + 1]).abs().max() < 1e-5, f"{setup}: position <= {t} saw the future"
