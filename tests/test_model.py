"""BLT forward (blt_facts §7): config validation, input checks, pooling, padding without NaN, and causality under
static, space, n-gram-entropy and neural-entropy patching (patches recomputed from the changed input)."""
import pytest
import torch
import torch.nn.functional as F

from blt_repro.data import load_corpus
from blt_repro.hashing import HashNgramConfig
from blt_repro.model import BLT, BLTConfig, CrossAttention, max_pool_patches, max_pool_patches_loop
from blt_repro.entropy_model import EntropyModel, EntropyModelConfig, entropies as neural_entropies
from blt_repro.ngram import NGramEntropyModel
from blt_repro.patching import entropy_patch_lengths, patch_ids_from_lengths, space_patch_lengths, static_patch_lengths
from blt_repro.tokenizer import BOS_ID, ByteTokenizer

TOK = ByteTokenizer()


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    return BLT(BLTConfig.tiny()).eval()


@pytest.fixture(scope="module")
def ngram():
    docs = load_corpus("en", "train", max_bytes=200_000)
    m = NGramEntropyModel(order=4, discounts="estimated").fit(docs[:8])
    thr = float(m.entropies(torch.tensor([TOK.encode(docs[8][:2000])])).median())
    return m, thr, docs


def test_config_validation():
    cfg = BLTConfig.tiny()
    assert BLTConfig.from_dict(cfg.to_dict()) == cfg
    with pytest.raises(ValueError, match="unknown BLTConfig fields"): BLTConfig.from_dict({"d_locall": 64})
    with pytest.raises(ValueError, match="divisible"): BLTConfig(d_local=100, n_heads_local=3)
    with pytest.raises(ValueError, match="must equal d_local"): BLTConfig(d_local=64, hash=HashNgramConfig(dim=32))
    with pytest.raises(ValueError, match="local_window"): BLTConfig(local_window=0)
    with pytest.raises(ValueError, match="n_heads_cross"): BLTConfig(d_local=64, n_heads_cross=3)
    with pytest.raises(ValueError, match="query_init"): BLTConfig(query_init="bytes")
    with pytest.raises(ValueError, match="cross_attn_k must be an int >= 1"): BLTConfig(cross_attn_k=0)
    assert not BLTConfig.tiny().needs_input_projection and BLTConfig.tiny(cross_attn_k=3).needs_input_projection
    assert BLT(BLTConfig.tiny(cross_attn_k=3)).global_transformer.token_embedding_projection.in_features == 192


def test_input_checks(model):
    ids = torch.tensor([TOK.encode("abc def", add_eos=False)])
    L = space_patch_lengths(ids, include_next_token=True)
    assert model(ids, L).shape == (1, ids.shape[1], 260)
    with pytest.raises(ValueError, match="length 1"): model(ids, L[:, 1:])
    with pytest.raises(ValueError, match="S\\+1"): model(ids, space_patch_lengths(ids))
    with pytest.raises(ValueError, match="int tensor"): model(ids.float(), L)
    with pytest.raises(ValueError, match="0..259"): model(ids + 300, L)
    with pytest.raises(ValueError, match="right padding"): model(ids, torch.tensor([[1, 0, 8]]))


def test_max_pool():
    h = torch.randn(3, 9, 5)
    L = torch.tensor([[1, 2, 7, 0], [1, 9, 0, 0], [1, 1, 1, 7]])
    pid = patch_ids_from_lengths(L, 9)
    out = max_pool_patches(h, pid, 4)
    assert torch.equal(out, max_pool_patches_loop(h, pid, 4))
    assert torch.equal(out[1, 2:], torch.zeros(2, 5))


def test_cross_attention_empty_row_and_double_residual():
    xa = CrossAttention(16, 4, 2)
    q, kv = torch.randn(1, 2, 16), torch.randn(1, 3, 16)
    mask = torch.tensor([[1, 1, 0], [0, 0, 0]], dtype=torch.bool)[None, None]
    with torch.no_grad():
        out = xa(q, kv, mask)
        plain = CrossAttention(16, 4, 2, double_residual=False); plain.load_state_dict(xa.state_dict())
        assert torch.equal(out[0, 1], q[0, 1])
        torch.testing.assert_close(plain(q, kv, mask), out - q)


@pytest.mark.parametrize("kw", [dict(), dict(cross_attn_all_layers_encoder=True, n_layers_encoder=2),
                                dict(cross_attn_encoder=False, cross_attn_decoder=False, d_global=64),
                                dict(cross_attn_window_encoder=2, cross_attn_window_decoder=3, query_init="embedding"),
                                dict(double_residual=False, hash=None, local_window=None, document_mask=False)])
def test_padding_is_batch_independent_and_finite(kw):
    torch.manual_seed(0)
    m = BLT(BLTConfig.tiny(**kw)).eval()
    rows = ["Hi there, you. x", "Abcdefghijklmnop", "a b c d e f g h "]
    ids = torch.tensor([TOK.encode(r, add_eos=False) for r in rows])
    ids[2, 9] = 2                                                         # an EOS inside a row
    Ls = [space_patch_lengths(ids[i:i + 1], include_next_token=True) for i in range(len(rows))]
    P = max(l.shape[1] for l in Ls)
    with torch.no_grad():
        both = m(ids, torch.cat([F.pad(l, (0, P - l.shape[1])) for l in Ls]))
        alone = torch.cat([m(ids[i:i + 1], Ls[i]) for i in range(len(rows))])
    assert torch.isfinite(both).all()
    torch.testing.assert_close(both, alone, atol=1e-5, rtol=0)


def test_document_mask_cuts_at_eos():
    "Without hash n-grams (which span the EOS, as officially), encoder byte states after the EOS and global states of "
    "patches after the EOS patch do not see the previous document. (Decoder bytes 9..11 read the EOS patch by design.)"
    torch.manual_seed(0)
    model = BLT(BLTConfig.tiny(hash=None)).eval()
    ids = torch.tensor([TOK.encode("one doc. two doc.", add_eos=False)])
    ids[0, 8] = 2                                                         # EOS
    other = ids.clone(); other[0, 1:8] = torch.randint(4, 260, (7,))      # change only the first document
    L = static_patch_lengths(ids, 4, include_next_token=True)             # patches [0] [1-4] [5-8] [9-12] [13-16] [17]
    outs = []
    with torch.no_grad():
        for x in (ids, other):
            m = model.masks(x, L)
            h, p = model.local_encoder(model.embed(x), m["local"], m["enc_cross"], m["patch_ids"], L.shape[1])
            outs.append((h, model.global_transformer(p.reshape(1, L.shape[1], -1), m["glob"])))
    (h1, g1), (h2, g2) = outs
    assert (h1[0, 9:] - h2[0, 9:]).abs().max() < 1e-5 and (h1[0, 1:8] - h2[0, 1:8]).abs().max() > 1e-4
    assert (g1[0, 3:] - g2[0, 3:]).abs().max() < 1e-5 and (g1[0, 1:3] - g2[0, 1:3]).abs().max() > 1e-4


def _gap(model, ids, t, patcher, seed):
    g = torch.Generator().manual_seed(seed)
    changed = ids.clone()
    changed[:, t + 1:] = torch.randint(4, 260, changed[:, t + 1:].shape, generator=g)
    with torch.no_grad():
        a, b = model(ids, patcher(ids)), model(changed, patcher(changed))
    return (a[:, :t + 1] - b[:, :t + 1]).abs().max().item()


@pytest.fixture(scope="module")
def neural(ngram):
    "A small random-weight entropy model with a 16-byte window (its own causality is exercised too) and its median."
    torch.manual_seed(3)
    em = EntropyModel(EntropyModelConfig(dim=32, n_layers=2, n_heads=2, window=16)).eval()
    thr = float(neural_entropies(em, torch.tensor([TOK.encode(ngram[2][8][:2000])])).median())
    return em, thr


@pytest.mark.parametrize("mode", ["static", "space", "entropy", "neural"])
@pytest.mark.parametrize("text", ["random", "corpus"])
def test_causality(model, ngram, neural, mode, text):
    m, thr, docs = ngram
    em, nthr = neural
    patcher = {"static": lambda x: static_patch_lengths(x, 4, include_next_token=True),
               "space": lambda x: space_patch_lengths(x, include_next_token=True),
               "entropy": lambda x: entropy_patch_lengths(m.entropies(x), thr, include_next_token=True),
               "neural": lambda x: entropy_patch_lengths(neural_entropies(em, x), nthr, include_next_token=True)}[mode]
    g = torch.Generator().manual_seed(7)
    ids = (torch.cat([torch.tensor([[BOS_ID]]), torch.randint(4, 260, (2, 47), generator=g)[:1]], 1) if text == "random"
           else torch.tensor([TOK.encode(docs[9][:47], add_eos=False)]))
    worst = max(_gap(model, ids, t, patcher, seed=t) for t in range(0, ids.shape[1] - 1, 3))
    assert worst < 1e-5, worst


def test_causality_all_layers_and_windows(ngram):
    m, thr, docs = ngram
    torch.manual_seed(1)
    model = BLT(BLTConfig.tiny(n_layers_encoder=2, cross_attn_all_layers_encoder=True, cross_attn_window_encoder=3,
                               cross_attn_window_decoder=2, local_window=8)).eval()
    ids = torch.tensor([TOK.encode(docs[10][:40], add_eos=False)])
    patcher = lambda x: entropy_patch_lengths(m.entropies(x), thr, include_next_token=True)
    assert max(_gap(model, ids, t, patcher, seed=t) for t in range(0, ids.shape[1] - 1, 4)) < 1e-5


def test_leaky_lengths_are_detected(model):
    "The test has teeth: a patcher whose boundary before byte t+1 depends on byte t+1 leaks the future."
    space = TOK.encode(" ", add_bos=False, add_eos=False)[0]
    def leaky(x):
        starts = torch.ones(x.shape[1] + 1, dtype=torch.bool)
        starts[2:-1] = x[0, 2:] == space
        cuts = torch.nonzero(starts).flatten().tolist() + [x.shape[1] + 1]
        return torch.tensor([[b - a for a, b in zip(cuts, cuts[1:])]])
    ids = torch.tensor([TOK.encode("the cat sat on the mat and then it ran", add_eos=False)])
    assert max(_gap(model, ids, t, leaky, seed=t) for t in range(1, ids.shape[1] - 1, 2)) > 1e-3


def test_steps_compose_to_forward():
    "BLT.forward is embed -> run_layers -> patch_states -> global -> slots -> decode; embed(chunk, context) equals the "
    "full-row embedding of that chunk (the hash n-grams read the context)."
    torch.manual_seed(0)
    model = BLT(BLTConfig.tiny()).eval()
    ids = torch.tensor([TOK.encode("steps of one forward", add_eos=False)])
    m = model.embed_context
    assert m == 4                                                         # hash n-grams up to 5 bytes
    with torch.no_grad():
        torch.testing.assert_close(model.embed(ids[:, 9:], ids[:, 9 - m:9]), model.embed(ids)[:, 9:], atol=0, rtol=0)
        L = space_patch_lengths(ids, include_next_token=True)
        masks, P, enc, dec = model.masks(ids, L), L.shape[1], model.local_encoder, model.local_decoder
        hs = enc.run_layers(model.embed(ids), masks["local"])
        g = model.global_transformer(enc.patch_states(hs, masks["patch_ids"], P).reshape(1, P, -1), masks["glob"])
        out = dec.decode(hs[-1], dec.slots(g), masks["decoder_patch_ids"], masks["local"])
        torch.testing.assert_close(out, model(ids, L), atol=0, rtol=0)


@pytest.mark.parametrize("shape", [(2, 4, 2, 30, 7, 2, None), (1, 2, 2, 17, 5, 1, 3), (3, 4, 1, 12, 4, 3, 2),
                                   (2, 2, 1, 9, 3, 2, 8)])   # B, H, Hkv, S, P, k, W (the last: a window past every patch)
def test_slot_mask_equals_dense_mask_forward_and_backward(shape):
    "The decoder's gather-form cross-attention (SlotMask) = SDPA over its dense mask: outputs and all three gradients."
    from blt_repro.layers import masked_attention
    from blt_repro.model import SlotMask
    B, H, Hkv, S, P, k, W = shape
    g = torch.Generator().manual_seed(sum(shape[:6]))
    ids = torch.sort(torch.randint(0, P, (B, S), generator=g), 1).values
    ids[0, 0] = -1                                                  # a byte that reads no slot: output and grads 0
    sm = SlotMask(ids, P, k, W)
    leaves = [torch.randn(*s, generator=g, requires_grad=True) for s in ((B, H, S, 8), (B, Hkv, P * k, 8), (B, Hkv, P * k, 8))]
    w = torch.randn(B, H, S, 8, generator=g)                        # a random cotangent
    outs, grads = [], []
    for mask in (sm, sm.dense()):
        out = masked_attention(*leaves, mask)
        outs.append(out)
        grads.append(torch.autograd.grad((out * w).sum(), leaves))
    # fp32 sums of at most P*k terms of O(1) numbers, ordered differently: 1e-5 absolute is ~100 ulps of headroom
    torch.testing.assert_close(outs[0], outs[1], rtol=0, atol=1e-5)
    for a, b in zip(*grads): torch.testing.assert_close(a, b, rtol=0, atol=1e-5)
    assert outs[0][0, :, 0].abs().max() == 0


def test_plain_causal_mask_is_structured_and_exact():
    "A causal layer with no document cut and no effective window gets BandedMask(S, S): SDPA is_causal, = the dense mask."
    from blt_repro.layers import BandedMask, causal_mask, local_attention_mask, masked_attention
    tok = torch.randint(4, 260, (2, 40), generator=torch.Generator().manual_seed(0))
    for window in (None, 40, 100):
        assert local_attention_mask(tok, window, eos_id=None) == BandedMask(40, 40)
    assert isinstance(local_attention_mask(tok, 30, eos_id=None), torch.Tensor)          # a real window: dense
    q, kk, v = (torch.randn(2, 4, 40, 8, generator=torch.Generator().manual_seed(i)) for i in range(3))
    # both are SDPA over the same 40 keys, one with is_causal, one with a mask: outputs are convex combinations of
    # O(1) values, so 1e-6 is ~8 fp32 ulps of headroom for the different summation order
    torch.testing.assert_close(masked_attention(q, kk, v, BandedMask(40, 40)),
                               masked_attention(q, kk, v, causal_mask(40)[None, None]), rtol=0, atol=1e-6)
