"""The neural entropy model: config validation, shapes, the entropy formula and its bounds, no leak between rows
(official issue #123), document masking, the sliding window, causality, chunking, exact bpb, the Arrow cache, training."""
import math

import pytest
import torch

import blt_repro.entropy_model as em
from blt_repro.entropy_model import (ENTROPY_PRESETS, EntropyModel, EntropyModelConfig, bpb, cached_entropies,
                                     entropies, entropy_cache_path, entropy_from_logits, model_hash, row_chunks,
                                     train_entropy_model)
from blt_repro.tokenizer import EOS_ID, OFFSET, ByteTokenizer

TOK = ByteTokenizer()
W = 6


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    return EntropyModel(EntropyModelConfig(dim=32, n_layers=2, n_heads=2, window=W)).eval()


def rand_rows(b, s, seed=0):
    return torch.randint(OFFSET, 260, (b, s), generator=torch.Generator().manual_seed(seed))


@pytest.mark.parametrize("kwargs, msg", [({"dim": 30, "n_heads": 4}, "divisible"), ({"window": 0}, "window"),
                                         ({"n_layers": 0}, "n_layers"), ({"vocab_size": 100}, "260"),
                                         ({"eos_id": 999}, "eos_id"), ({"dim": 2.5}, "dim")])
def test_config_errors(kwargs, msg):
    with pytest.raises(ValueError, match=msg): EntropyModelConfig(**kwargs)


def test_config_from_dict_and_presets():
    with pytest.raises(ValueError, match="windw"): EntropyModelConfig.from_dict({"windw": 3})
    paper = ENTROPY_PRESETS["paper"]
    assert (paper.dim, paper.n_layers, paper.n_heads, paper.window, paper.vocab_size) == (768, 14, 12, 512, 260)
    assert paper.transformer_config().hidden_dim == 2048


def test_shapes_and_bad_input(model):
    x = rand_rows(3, 17)
    assert model(x).shape == (3, 17, 260)
    assert entropies(model, x).shape == (3, 17) and entropies(model, x).dtype == torch.float32
    with pytest.raises(ValueError, match=r"\[B, S\]"): entropies(model, x[0])
    with pytest.raises(ValueError, match="token ids"): model(x + 300)
    with pytest.raises(TypeError, match="integer"): model(x.float())


def test_formula_and_bounds(model):
    x = rand_rows(2, 12)
    h = entropies(model, x)
    with torch.no_grad(): p = model(x).double().softmax(-1)
    naive = -(p * p.log()).sum(-1)
    torch.testing.assert_close(h, naive.float(), atol=1e-5, rtol=0)
    assert (h >= 0).all() and (h <= math.log(260) + 1e-5).all()
    # extremes: uniform logits give ln 260, a one-hot-ish distribution gives ~0
    assert abs(entropy_from_logits(torch.zeros(260)).item() - math.log(260)) < 1e-5
    assert entropy_from_logits(torch.tensor([100.0] + [0.0] * 259)).item() < 1e-6


def test_identical_rows_identical_entropies(model):          # official issue #123
    row = rand_rows(1, 40)                                    # no EOS: the case that leaked officially
    h = entropies(model, row.repeat(5, 1), batch_size=5)
    alone = entropies(model, row)
    for b in range(5): torch.testing.assert_close(h[b], alone[0], atol=1e-6, rtol=0)


def test_other_rows_do_not_change_a_row(model):
    row = rand_rows(1, 40)
    alone = entropies(model, row)[0]
    for seed in (1, 2):
        batch = torch.cat([rand_rows(2, 40, seed), row, rand_rows(1, 40, seed + 10)])
        torch.testing.assert_close(entropies(model, batch, batch_size=4)[2], alone, atol=1e-6, rtol=0)
        torch.testing.assert_close(entropies(model, batch, batch_size=3)[2], alone, atol=1e-6, rtol=0)


def test_document_mask(model):
    """A byte after EOS does not see the previous document: its entropies equal those of the document alone."""
    a, b = TOK.encode("first document here"), TOK.encode("second one")
    both = entropies(model, torch.tensor([a + b]))[0]
    alone = entropies(model, torch.tensor([b]))[0]
    torch.testing.assert_close(both[len(a):], alone, atol=1e-5, rtol=0)
    other = TOK.encode("a totally different first document")
    both2 = entropies(model, torch.tensor([other + b]))[0]
    torch.testing.assert_close(both2[len(other):], alone, atol=1e-5, rtol=0)
    assert EOS_ID in a


def test_sliding_window(model):
    """One layer sees W bytes; two layers see 2(W-1) back. A change further back never moves the output."""
    x = rand_rows(1, 40)
    y = x.clone(); y[0, 5] = (x[0, 5] - OFFSET + 1) % 256 + OFFSET
    hx, hy = entropies(model, x)[0], entropies(model, y)[0]
    reach = 5 + model.cfg.receptive_field                     # last position the change can reach
    torch.testing.assert_close(hx[reach + 1:], hy[reach + 1:], atol=1e-5, rtol=0)
    assert (hx[5:reach + 1] - hy[5:reach + 1]).abs().max() > 1e-4   # and it does reach inside the field


def test_causality(model):
    x = rand_rows(2, 30)
    for t in (0, 7, 20):
        y = x.clone(); y[:, t + 1:] = rand_rows(2, 30 - t - 1, seed=t + 5)
        torch.testing.assert_close(entropies(model, x)[:, : t + 1], entropies(model, y)[:, : t + 1], atol=1e-6, rtol=0)


def test_chunking_equals_whole_row(model):
    assert row_chunks(20, 8, 3) == [(0, 0, 8), (5, 8, 13), (10, 13, 18), (15, 18, 20)]
    with pytest.raises(ValueError, match="receptive field"): row_chunks(20, 3, 3)
    x = rand_rows(3, 200)
    x[1, 50] = EOS_ID
    whole = entropies(model, x, chunk_len=200)
    for cl in (model.cfg.receptive_field + 1, 31, 64):
        torch.testing.assert_close(entropies(model, x, chunk_len=cl, batch_size=4), whole, atol=1e-5, rtol=0)


def test_bpb_exact_denominator(model):
    docs = ["hello world", "bye", "x"]
    total_bits, n = 0.0, 0
    with torch.no_grad():
        for d in docs:
            ids = torch.tensor(TOK.encode(d))                 # BOS bytes EOS
            lp = model(ids[None])[0].log_softmax(-1)          # [S, V]
            total_bits -= lp[:-2].gather(-1, ids[1:-1, None]).sum().item() / math.log(2)   # bytes only
            n += len(d.encode())
    for seq_len in (12, 64):                              # 12 < 21 ids: chunked
        assert abs(bpb(model, docs, seq_len=seq_len) - total_bits / n) < 1e-4


def test_cache_hit_and_miss(model, tmp_path, monkeypatch):
    docs = ["one document", "and another"]
    calls = []
    real = em.document_entropies
    monkeypatch.setattr(em, "document_entropies", lambda *a, **k: calls.append(1) or real(*a, **k))
    ds = cached_entropies(model, docs, "toy", "validation", cache_dir=tmp_path)
    assert len(calls) == 1 and len(ds) == 2 and len(ds[0]["entropies"]) == len(docs[0]) + 2
    torch.testing.assert_close(torch.tensor(ds[1]["entropies"]), entropies(model, torch.tensor([TOK.encode(docs[1])]))[0],
                               atol=1e-5, rtol=0)
    ds2 = cached_entropies(model, docs, "toy", "validation", cache_dir=tmp_path)      # hit
    assert len(calls) == 1 and ds2[0]["entropies"] == ds[0]["entropies"]
    cached_entropies(model, docs, "toy", "test", cache_dir=tmp_path)                  # other split: miss
    assert len(calls) == 2
    m2 = EntropyModel(model.cfg)
    assert model_hash(m2) != model_hash(model)
    assert entropy_cache_path(m2, docs, "toy", "validation", tmp_path) != entropy_cache_path(model, docs, "toy", "validation", tmp_path)
    monkeypatch.setenv("BLT_CACHE_DIR", str(tmp_path / "env"))
    assert entropy_cache_path(model, docs, "toy", "validation").parent == tmp_path / "env"
    with pytest.raises(ValueError, match="slashes"): entropy_cache_path(model, docs, "a/b", "validation")


def test_training_loss_decreases():
    docs = ["the cat sat on the mat. " * 40, "the dog sat on the log. " * 40]
    cfg = EntropyModelConfig(dim=32, n_layers=1, n_heads=2, window=32)
    model, hist = train_entropy_model(cfg, docs, steps=40, seq_len=64, batch_size=4, lr=1e-2, device="cpu", progress=False)
    assert len(hist) == 40 and not model.training
    first, last = sum(h["loss"] for h in hist[:5]) / 5, sum(h["loss"] for h in hist[-5:]) / 5
    assert last < first - 1.0, (first, last)
    assert bpb(model, docs[:1], seq_len=128) < 2.0


def test_cached_forward_equals_full():
    "EntropyModel.forward with a cache (its window is a ring), byte by byte and in chunks, gives the full-row logits."
    torch.manual_seed(0)
    model = EntropyModel(EntropyModelConfig(dim=32, n_layers=2, n_heads=2, window=W)).eval()
    x = torch.tensor([TOK.encode("first doc") + TOK.encode("second one, longer")])
    with torch.no_grad():
        cache = model.new_cache(batch=1, max_len=x.shape[1])
        steps = [model(x[:, t:t + 1], cache=cache) for t in range(7)] + [model(x[:, 7:], cache=cache)]
        torch.testing.assert_close(torch.cat(steps, 1), model(x), atol=1e-5, rtol=0)
