"""Layers and masks (blt_repro.layers): golden values, properties, and parity with transformers' BLT port."""
import warnings

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from blt_repro.hf import HF_BLOCK_NAMES
from blt_repro.layers import (Attention, KVCache, RMSNorm, SwiGLU, Transformer, TransformerBlock,
                              TransformerConfig, apply_rope, block_causal_patch_mask, causal_mask,
                              causality_violation, decoder_cross_mask, document_causal_mask, document_ids,
                              encoder_cross_mask, ffn_hidden_dim, masked_attention, patch_eos_flags,
                              local_attention_mask, rope_cos_sin, rope_halves_permutation, sliding_window_mask)
from blt_repro.patching import decoder_patch_ids_from_lengths, patch_ids_from_lengths
from blt_repro.tokenizer import EOS_ID

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from transformers.models.blt.configuration_blt import BltLocalEncoderConfig
    from transformers.models.blt.modeling_blt import (BltMLP, BltRMSNorm, BltRotaryEmbedding, BltSelfAttention,
                                                      BltTransformerLayer, apply_rotary_pos_emb)

MIN = torch.finfo(torch.float32).min


# ---------------------------------------------------------------- config and FFN width
@pytest.mark.parametrize("dim,hidden", [(256, 768), (512, 1536), (768, 2048), (1024, 2816), (2048, 5632), (4096, 11008)])
def test_ffn_hidden_dim_official(dim, hidden):
    assert ffn_hidden_dim(dim) == hidden


def test_config_validation():
    c = TransformerConfig(dim=768, n_heads=12)
    assert (c.head_dim, c.n_kv_heads, c.hidden_dim) == (64, 12, 2048)
    assert TransformerConfig(dim=64, n_heads=4, ffn_hidden=100).hidden_dim == 100
    with pytest.raises(ValueError, match="not divisible by n_heads"):
        TransformerConfig(dim=100, n_heads=3)
    with pytest.raises(ValueError, match="multiple of n_kv_heads"):
        TransformerConfig(dim=64, n_heads=4, n_kv_heads=3)
    with pytest.raises(ValueError, match="even for RoPE"):
        TransformerConfig(dim=12, n_heads=4)
    with pytest.raises(ValueError, match="window"):
        TransformerConfig(window=0)
    with pytest.raises(ValueError, match=r"unknown TransformerConfig fields \['nheads'\]"):
        TransformerConfig.from_dict({"dim": 64, "nheads": 4})
    with pytest.raises(TypeError):
        TransformerConfig(nheads=4)


# ---------------------------------------------------------------- RMSNorm, RoPE, attention
def test_rmsnorm_matches_torch_and_keeps_dtype():
    x = torch.randn(3, 5, 16) * 3
    n = RMSNorm(16)
    with torch.no_grad(): n.weight.normal_()
    torch.testing.assert_close(n(x), F.rms_norm(x, (16,), n.weight, eps=1e-5), atol=1e-6, rtol=1e-5)
    assert n(x.bfloat16()).isfinite().all()


def test_rope_relative_and_norm_preserving():
    q, k = torch.randn(2, 3, 7, 16), torch.randn(2, 1, 7, 16)
    qa, ka = apply_rope(q, k, *rope_cos_sin(7, 16))
    qb, kb = apply_rope(q, k, *rope_cos_sin(torch.arange(100, 107), 16))
    torch.testing.assert_close(qa.norm(dim=-1), q.norm(dim=-1))
    torch.testing.assert_close(qa @ ka.transpose(-1, -2), qb @ kb.transpose(-1, -2), atol=1e-4, rtol=1e-4)
    # position 0 is the identity; per-row positions [B,S] broadcast over heads
    torch.testing.assert_close(qa[:, :, 0], q[:, :, 0])
    qc, _ = apply_rope(q, k, *rope_cos_sin(torch.arange(7)[None].expand(2, -1), 16))
    torch.testing.assert_close(qc, qa)


def test_rope_halves_permutation():
    "Split-halves RoPE on permuted channels equals adjacent-pair RoPE, permuted."
    D = 8
    x = torch.randn(1, 1, 5, D)
    cos, sin = rope_cos_sin(5, D)                                   # pair layout: (cos, cos), (-sin, +sin) per angle
    c, s = cos[..., ::2], sin[..., 1::2]                             # [5, D/2]: one cos and sin per angle
    perm = rope_halves_permutation(D)
    xp = x[..., perm]
    x1, x2 = xp.chunk(2, -1)
    halves = xp * torch.cat([c, c], -1) + torch.cat([-x2, x1], -1) * torch.cat([s, s], -1)
    torch.testing.assert_close(halves, apply_rope(x, x, cos, sin)[0][..., perm])


def _naive_attention(q, k, v, mask):
    rep = q.shape[1] // k.shape[1]
    k, v = k.repeat_interleave(rep, 1), v.repeat_interleave(rep, 1)
    s = (q @ k.transpose(-1, -2)) / q.shape[-1] ** 0.5
    return torch.softmax(s.masked_fill(~mask, float("-inf")), -1) @ v


def test_masked_attention_matches_naive_gqa():
    q, k, v = torch.randn(2, 6, 9, 8), torch.randn(2, 2, 9, 8), torch.randn(2, 2, 9, 8)
    m = sliding_window_mask(9, 3)[None, None]
    torch.testing.assert_close(masked_attention(q, k, v, m), _naive_attention(q, k, v, m), atol=1e-5, rtol=1e-5)


def test_all_false_rows_give_zero_not_nan_with_finite_grads():
    q = torch.randn(2, 4, 6, 8, requires_grad=True)
    k, v = torch.randn(2, 4, 6, 8, requires_grad=True), torch.randn(2, 4, 6, 8, requires_grad=True)
    m = causal_mask(6)[None, None].repeat(2, 1, 1, 1)
    m[1, 0, 4:] = False                                        # padding queries
    m[0, 0, :, :] = False                                      # a whole padding row of the batch
    out = masked_attention(q, k, v, m)
    assert not out.isnan().any()
    assert out[1, :, 4:].abs().max() == 0 and out[0].abs().max() == 0
    out.square().sum().backward()
    assert all(t.grad.isfinite().all() for t in (q, k, v))
    # the unpadded part is unchanged by the padding of other rows
    torch.testing.assert_close(out[1, :, :4], _naive_attention(q, k, v, m)[1, :, :4])


def test_masked_attention_rejects_bad_masks():
    q = torch.randn(1, 2, 4, 8)
    with pytest.raises(TypeError, match="bool"):
        masked_attention(q, q, q, torch.zeros(1, 1, 4, 4))
    with pytest.raises(ValueError, match="mask must be"):
        masked_attention(q, q, q, torch.ones(4, 4, dtype=torch.bool))


# ---------------------------------------------------------------- masks
def test_causal_and_window():
    assert causal_mask(3).int().tolist() == [[1, 0, 0], [1, 1, 0], [1, 1, 1]]
    w = sliding_window_mask(7, 3)
    i, j = torch.meshgrid(torch.arange(7), torch.arange(7), indexing="ij")
    assert torch.equal(w, (i - 3 < j) & (j <= i))
    assert torch.equal(sliding_window_mask(5, 99), causal_mask(5))
    with pytest.raises(ValueError):
        sliding_window_mask(4, 0)


def _doc_loop(row, window=None):
    doc, docs = 0, []
    for t in row:
        docs.append(doc); doc += t == EOS_ID
    S = len(row)
    return torch.tensor([[docs[i] == docs[j] and j <= i and (window is None or i - j < window) for j in range(S)]
                         for i in range(S)])


@pytest.mark.parametrize("window", [None, 1, 3])
def test_document_causal_mask_vs_loop(window):
    g = torch.Generator().manual_seed(0)
    tok = torch.randint(0, 6, (4, 15), generator=g)            # ids 0..5: EOS=2 is frequent
    m = document_causal_mask(tok, window=window)
    assert m.shape == (4, 1, 15, 15)
    for b in range(4):
        assert torch.equal(m[b, 0], _doc_loop(tok[b].tolist(), window))


def test_document_cut_after_eos():
    tok = torch.tensor([[1, 9, 2, 1, 9, 2]])
    assert document_ids(tok == EOS_ID).tolist() == [[0, 0, 0, 1, 1, 1]]
    m = document_causal_mask(tok)[0, 0]
    assert m[2, 0] and m[2, 2] and not m[3, 2]                 # EOS sees its document; next BOS does not see it


def test_block_causal_patch_mask():
    tok = torch.tensor([[1, 10, 11, 2, 1, 12, 2, 1, 13, 14]])
    lens = torch.tensor([[1, 2, 1, 1, 2, 1, 2, 0]])            # last patch is right padding
    pid = patch_ids_from_lengths(lens, 10)
    assert patch_eos_flags(tok, pid, 8).int().tolist() == [[0, 0, 1, 0, 1, 0, 0, 0]]
    m = block_causal_patch_mask(tok, pid, 8)[0, 0]
    doc = torch.tensor([0, 0, 0, 1, 1, 2, 2, 2])
    i = torch.arange(8)
    assert torch.equal(m, (doc[:, None] == doc[None]) & (i[None] <= i[:, None]))


def test_encoder_cross_mask():
    lens = torch.tensor([[1, 3, 2, 3], [1, 1, 7, 0]])
    pid = patch_ids_from_lengths(lens, 8)
    m = encoder_cross_mask(pid, 4)
    assert m.shape == (2, 1, 4, 8)
    for b in range(2):
        for q in range(4):
            assert torch.equal(m[b, 0, q], pid[b] == q)
    assert m[1, 0, 3].sum() == 0                               # the padding patch reads nothing
    mk = encoder_cross_mask(pid, 4, k=3)
    assert mk.shape == (2, 1, 12, 8) and torch.equal(mk[:, :, 1::3], m) and torch.equal(mk[:, :, 2::3], m)
    mw = encoder_cross_mask(pid, 4, window=2)
    for q in range(4):
        assert torch.equal(mw[0, 0, q], (pid[0] <= q) & (pid[0] > q - 2))
    assert torch.equal(encoder_cross_mask(pid, 4, window=1), m)


def test_decoder_cross_mask():
    lens = torch.tensor([[1, 3, 2, 3]])
    dpid = decoder_patch_ids_from_lengths(lens, 8)
    m = decoder_cross_mask(dpid, 4)
    assert m.shape == (1, 1, 8, 4)
    assert torch.equal(m[0, 0], dpid[0][:, None] == torch.arange(4)[None])
    mk = decoder_cross_mask(dpid, 4, k=2)
    assert mk.shape == (1, 1, 8, 8) and torch.equal(mk[..., ::2], m) and torch.equal(mk[..., 1::2], m)
    mw = decoder_cross_mask(dpid, 4, window=3)
    p = torch.arange(4)[None]
    assert torch.equal(mw[0, 0], (p <= dpid[0][:, None]) & (p > dpid[0][:, None] - 3))
    assert decoder_cross_mask(torch.tensor([[-1, 0]]), 2)[0, 0, 0].sum() == 0


# ---------------------------------------------------------------- causality probe
@pytest.mark.parametrize("kind", ["causal", "window", "document", "document_window"])
def test_causality_probe(kind):
    torch.manual_seed(0)
    V, S = 8, 20
    emb = nn.Embedding(V, 32)
    net = Transformer(TransformerConfig(dim=32, n_layers=2, n_heads=4, n_kv_heads=2, ffn_hidden=48))
    fns = {"causal": lambda t: causal_mask(S)[None, None], "window": lambda t: sliding_window_mask(S, 3)[None, None],
           "document": lambda t: document_causal_mask(t), "document_window": lambda t: document_causal_mask(t, window=5)}
    model = lambda tok, mask: net(emb(tok), mask)
    g = torch.Generator().manual_seed(1)
    tok = torch.randint(0, V, (3, S), generator=g)
    for t in (0, 7, S - 2):
        tok2 = tok.clone()
        tok2[:, t + 1:] = torch.randint(0, V, (3, S - t - 1), generator=g)
        assert causality_violation(model, tok, tok2, t, fns[kind]) == 0.0


# ---------------------------------------------------------------- parity with transformers' BLT port
def _hf_config(dim=64, heads=8, kv_heads=2, hidden=96, theta=500000.0):
    c = BltLocalEncoderConfig(hidden_size=dim, num_attention_heads=heads, num_key_value_heads=kv_heads,
                              intermediate_size=hidden, rope_parameters={"rope_type": "default", "rope_theta": theta},
                              rms_norm_eps=1e-5)
    c._attn_implementation = "eager"
    return c


def _randomize(module):
    with torch.no_grad():
        for p in module.parameters(): p.normal_(0, 0.2)
    return module.eval()


def test_parity_rmsnorm():
    hf = _randomize(BltRMSNorm(32, eps=1e-5))
    ours = RMSNorm(32)
    ours.load_state_dict(hf.state_dict())
    x = torch.randn(4, 9, 32)
    torch.testing.assert_close(ours(x), hf(x), atol=1e-6, rtol=0)


def test_parity_rope():
    hcfg = _hf_config(theta=10000.0)
    x = torch.randn(2, 8, 11, 8)
    pos = torch.arange(11)[None].expand(2, -1)
    cos_hf, sin_hf = BltRotaryEmbedding(hcfg)(x, pos)
    q_hf, k_hf = apply_rotary_pos_emb(x, x[:, :2], cos_hf, sin_hf)
    q, k = apply_rope(x, x[:, :2], *rope_cos_sin(11, 8, 10000.0))
    torch.testing.assert_close(q, q_hf, atol=1e-6, rtol=0)
    torch.testing.assert_close(k, k_hf, atol=1e-6, rtol=0)


def test_parity_mlp():
    hf = _randomize(BltMLP(_hf_config()))
    ours = SwiGLU(64, 96)
    ours.load_state_dict({"w1.weight": hf.gate_proj.weight, "w3.weight": hf.up_proj.weight,
                          "w2.weight": hf.down_proj.weight})
    x = torch.randn(3, 5, 64)
    torch.testing.assert_close(ours(x), hf(x), atol=1e-5, rtol=0)


@pytest.mark.parametrize("heads,kv_heads", [(8, 8), (8, 2), (4, 1)])
def test_parity_attention(heads, kv_heads):
    torch.manual_seed(heads + kv_heads)
    hcfg = _hf_config(heads=heads, kv_heads=kv_heads)
    hf, rope = _randomize(BltSelfAttention(hcfg, 0)), BltRotaryEmbedding(hcfg)
    ours = Attention(64, heads, kv_heads).eval()
    ours.load_state_dict({f"w{c}.weight": getattr(hf, f"{c}_proj").weight for c in "qkvo"})
    x, S = torch.randn(2, 17, 64), 17
    mask = document_causal_mask(torch.tensor([[1, 5, 5, 2] + [5] * 13, [5] * 9 + [2] + [5] * 7]), window=6)
    with torch.no_grad():
        ref, _ = hf(x, attention_mask=torch.zeros(mask.shape).masked_fill(~mask, MIN),
                    position_embeddings=rope(x, torch.arange(S)[None].expand(2, -1)))
        got = ours(x, mask, *rope_cos_sin(S, 64 // heads, 500000.0))
    torch.testing.assert_close(got, ref, atol=1e-5, rtol=0)


def test_parity_block():
    torch.manual_seed(0)
    hcfg = _hf_config()
    hf, rope = _randomize(BltTransformerLayer(hcfg, 0)), BltRotaryEmbedding(hcfg)
    ours = TransformerBlock(TransformerConfig(dim=64, n_heads=8, n_kv_heads=2, ffn_hidden=96, rope_theta=5e5)).eval()
    sd = hf.state_dict()
    ours.load_state_dict({ours_name: sd[hf_name] for ours_name, hf_name in HF_BLOCK_NAMES.items()})
    x, S = torch.randn(2, 30, 64), 30
    mask = sliding_window_mask(S, 8)[None, None]
    with torch.no_grad():
        ref = hf(x, attention_mask=torch.zeros(mask.shape).masked_fill(~mask, MIN),
                 position_embeddings=rope(x, torch.arange(S)[None].expand(2, -1)))
        got = ours(x, mask, *rope_cos_sin(S, 8, 5e5))
    torch.testing.assert_close(got, ref, atol=1e-5, rtol=0)


# ---------------------------------------------------------------- KV cache
@pytest.mark.parametrize("eos", [[(0, 4), (2, 10), (2, 11)], [(0, 12), (2, 15), (2, 16)]], ids=["eos_early", "eos_late"])
@pytest.mark.parametrize("window, kv_heads", [(None, 4), (5, 2), (3, 1)])
def test_kv_cache_equals_full_forward(window, kv_heads, eos):
    "The same Transformer.forward, fed in chunks with a KVCache (rows advancing separately, chunks longer than the "
    "ring), gives the outputs of one pass over the whole rows (causal or windowed, document-masked, GQA). eos_late: "
    "the first chunks hold no EOS, so the cache keeps no document ids until the first one arrives."
    torch.manual_seed(0)
    cfg = TransformerConfig(dim=32, n_layers=2, n_heads=4, n_kv_heads=kv_heads, ffn_hidden=48, window=window)
    net = Transformer(cfg).eval()
    x, tok = torch.randn(3, 23, 32), torch.randint(4, 260, (3, 23))
    for r, t in eos: tok[r, t] = EOS_ID                                          # documents, one of them empty
    with torch.no_grad():
        full = net(x, local_attention_mask(tok, window))
        cache, got = KVCache.for_config(cfg, batch=3, max_len=23), torch.zeros_like(full)
        for rows, a, b in [([0, 1, 2], 0, 9), ([2], 9, 10), ([0, 1], 9, 10), ([1, 0], 10, 23), ([2], 10, 23)]:
            r = torch.tensor(rows)
            mask, pos = cache.start(r, tok[r, a:b] == EOS_ID)
            assert pos.tolist() == [list(range(a, b))] * len(rows)
            assert cache.split == any(t < b for _, t in eos)                       # document ids from the first EOS on
            got[r, a:b] = net(x[r, a:b], mask, pos, cache)
    torch.testing.assert_close(got, full, atol=1e-5, rtol=0)


def test_kv_cache_ragged_steps():
    "valid marks rows that get fewer new positions: the missing ones are neither keys nor counted."
    torch.manual_seed(0)
    cfg = TransformerConfig(dim=16, n_layers=1, n_heads=2, ffn_hidden=32)
    net = Transformer(cfg).eval()
    x = torch.randn(2, 6, 16)
    with torch.no_grad():
        full = net(x, causal_mask(6)[None, None])
        cache = KVCache.for_config(cfg, batch=2, max_len=6)
        valid = torch.tensor([[True, True, True], [True, False, False]])
        mask, pos = cache.start(None, torch.zeros(2, 3, dtype=torch.bool), valid)
        first = net(x[:, :3], mask, pos, cache)
        assert cache.length.tolist() == [3, 1]
        mask, pos = cache.start(torch.tensor([1]), torch.zeros(1, 5, dtype=torch.bool))   # row 1 catches up
        second = net(x[1:, 1:], mask, pos, cache)
    torch.testing.assert_close(first[0], full[0, :3], atol=1e-5, rtol=0)
    torch.testing.assert_close(torch.cat([first[1, :1], second[0]]), full[1], atol=1e-5, rtol=0)
