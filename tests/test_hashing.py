"""Hash n-gram ids (blt_facts §6): the official golden vectors, int64 wrap-around, and parity with transformers' BLT port."""
import warnings

import pytest
import torch
from torch import nn

from blt_repro.hashing import (PRIMES, HashNgramConfig, HashNgramEmbedding, byte_group_hash, byte_group_hash_naive,
                               prime_powers, wrap_int64)
from blt_repro.tokenizer import ByteTokenizer

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from transformers.models.blt.modeling_blt import byte_group_hash_function as hf_hash, compute_hash_embeddings

HELLO = [1, 76, 105, 112, 112, 115]   # "Hello" with BOS
GOLDEN = {  # (group_size, hash_fn_index, vocab) -> ids of the official function (blt_facts §6)
    (3, 0, 500002): [443987, 124875, 393970, 386145, 358223, 190185],
    (8, 0, 500002): [172383, 205585, 456240, 129346, 299568, 322649],
    (4, 0, 50002): [30497, 31489, 21044, 41306, 14147, 25724],
    (4, 1, 50002): [28777, 29347, 31820, 16762, 41227, 32224],
    (4, 2, 50002): [401, 5855, 9166, 14246, 47107, 16918],
}


def test_hello_ids():
    assert ByteTokenizer().encode("Hello", add_eos=False) == HELLO


def test_primes():
    assert PRIMES == (1000000007, 5915587277, 1500450271, 3267000013, 5754853343, 4093082899,
                      9576890767, 3628273133, 2860486313, 5463458053, 3367900313)


@pytest.mark.parametrize("key", list(GOLDEN))
def test_golden_vectors(key):
    n, f, V = key
    assert byte_group_hash_naive(HELLO, n, f, V) == GOLDEN[key]
    assert byte_group_hash(torch.tensor([HELLO, HELLO]), n, f, V).tolist() == [GOLDEN[key]] * 2
    assert byte_group_hash(torch.tensor([HELLO], dtype=torch.int32), n, f, V).tolist() == [GOLDEN[key]]


def test_wrap_int64():
    assert wrap_int64(2**63) == -2**63 and wrap_int64(2**63 - 1) == 2**63 - 1 and wrap_int64(-2**63 - 1) == 2**63 - 1
    assert wrap_int64(2**64 + 5) == 5
    for f, p in enumerate(PRIMES):
        assert prime_powers(f, 4).tolist() == [1, p, wrap_int64(p * p), wrap_int64(p**3)]


def test_vectorised_equals_naive():
    g = torch.Generator().manual_seed(1)
    x = torch.randint(0, 260, (3, 40), generator=g)
    big = torch.randint(-2**62, 2**62, (2, 12), generator=g)
    for n in range(1, 9):
        for f in range(len(PRIMES)):
            for V in (1, 3, 2**14, 500002):
                assert byte_group_hash(x, n, f, V).tolist() == [byte_group_hash_naive(r, n, f, V) for r in x.tolist()]
            assert byte_group_hash(big, n, f, 10**9 + 7).tolist() == [byte_group_hash_naive(r, n, f, 10**9 + 7)
                                                                      for r in big.tolist()]


def test_range_and_causality():
    g = torch.Generator().manual_seed(2)
    x = torch.randint(0, 260, (4, 64), generator=g)
    h = byte_group_hash(x, 8, 0, 1000)
    assert h.dtype == torch.int64 and h.shape == x.shape and h.min() >= 0 and h.max() < 1000
    y = x.clone(); y[:, 40:] = torch.randint(0, 260, (4, 24), generator=g)
    assert torch.equal(byte_group_hash(y, 8, 0, 1000)[:, :40], h[:, :40])


@pytest.mark.parametrize("call, match", [
    (lambda: byte_group_hash(torch.rand(1, 5), 3, 0, 10), "integer dtype"),
    (lambda: byte_group_hash(torch.tensor([True, False])[None], 3, 0, 10), "integer dtype"),
    (lambda: byte_group_hash(torch.tensor(HELLO), 3, 0, 10), r"2-D \[batch, seq\]"),
    (lambda: byte_group_hash(torch.tensor([HELLO]), 0, 0, 10), "group_size must be"),
    (lambda: byte_group_hash(torch.tensor([HELLO]), 3, -1, 10), "hash_fn_index must be in 0..10"),
    (lambda: byte_group_hash(torch.tensor([HELLO]), 3, 11, 10), "hash_fn_index must be in 0..10"),
    (lambda: byte_group_hash(torch.tensor([HELLO]), 3, 0, 0), r"vocab \(number of buckets\)"),
])
def test_bad_input(call, match):
    with pytest.raises((TypeError, ValueError), match=match):
        call()


def test_parity_with_transformers_hash():
    g = torch.Generator().manual_seed(3)
    for ids in (torch.randint(0, 260, (3, 48), generator=g), torch.randint(-2**62, 2**62, (2, 16), generator=g)):
        for n in range(1, 9):
            for f, p in enumerate(PRIMES):
                for V in (2**12, 30000, 50002, 500002):
                    assert torch.equal(byte_group_hash(ids, n, f, V), hf_hash(ids, n, p, V)), (n, f, V)


def test_config_validation():
    c = HashNgramConfig(dim=16)
    assert c.group_sizes == (3, 4, 5, 6, 7, 8) and c.n_functions == 1
    assert HashNgramConfig(dim=8, group_sizes="3,4").group_sizes == (3, 4)
    assert HashNgramConfig(dim=8, group_sizes=[4], n_functions=3).keys == [(0, 4), (1, 4), (2, 4)]
    assert HashNgramConfig(dim=8, group_sizes=(3, 4), n_functions=2).keys == [(0, 3), (0, 4), (1, 3), (1, 4)]
    for kw, match in [(dict(group_sizes=()), "non-empty"), (dict(group_sizes=(3, 0)), "non-empty"),
                      (dict(group_sizes=(3, 3)), "duplicates"), (dict(n_functions=0), "n_functions"),
                      (dict(n_functions=12), "n_functions"), (dict(vocab=0), "vocab"), (dict(dim=0), "dim")]:
        with pytest.raises(ValueError, match=match):
            HashNgramConfig(**{"dim": 8, **kw})


def test_embedding_shape_sum_and_init():
    torch.manual_seed(0)
    cfg = HashNgramConfig(dim=24, group_sizes=(3, 5), n_functions=2, vocab=2000)
    emb = HashNgramEmbedding(cfg)
    assert len(emb.tables) == 4 and sum(p.numel() for p in emb.parameters()) == cfg.n_params == 4 * 2000 * 24
    x = torch.randint(0, 260, (2, 30))
    out, ids = emb(x), emb.hash_ids(x)
    assert out.shape == (2, 30, 24) and ids.shape == (2, 30, 4)
    manual = sum(emb.tables[k](byte_group_hash(x, n, f, 2000)) for k, (f, n) in enumerate(cfg.keys))
    torch.testing.assert_close(out, manual, atol=1e-6, rtol=0)
    std = 24 ** -0.5
    w = emb.fused_weight().detach()
    assert w.abs().max() <= 3 * std and abs(w.std().item() - 0.9866 * std) < 0.01 * std


@pytest.mark.parametrize("n_functions, sizes", [(1, [3, 4, 5, 6, 7, 8]), (3, [4]), (2, [3, 6])])
def test_parity_with_transformers_compute_hash_embeddings(n_functions, sizes):
    torch.manual_seed(4)
    V, d = 997, 16
    emb = HashNgramEmbedding(HashNgramConfig(dim=d, group_sizes=tuple(sizes), n_functions=n_functions, vocab=V))
    K = n_functions * len(sizes)

    class Enc(nn.Module):   # the one attribute compute_hash_embeddings reads from the local encoder
        def __init__(self):
            super().__init__(); self.embed_tokens = nn.Embedding(260, d)

    enc, fused = Enc(), nn.Embedding(K * V, d)
    x = torch.randint(0, 260, (3, 50))
    with torch.no_grad():
        fused.weight.copy_(emb.fused_weight())                        # ours -> port
        ref = compute_hash_embeddings(x, enc, fused, n_functions, sizes, V)
        ours = enc.embed_tokens(x) + emb(x)
        assert (ours - ref).abs().max().item() < 1e-6
        fused.weight.normal_()                                       # port -> ours
        emb.load_fused_weight(fused.weight)
        ref = compute_hash_embeddings(x, enc, fused, n_functions, sizes, V)
        assert (enc.embed_tokens(x) + emb(x) - ref).abs().max().item() < 1e-5
    with pytest.raises(ValueError, match="fused weight must have shape"):
        emb.load_fused_weight(torch.zeros(K * V + 1, d))
