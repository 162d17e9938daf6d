"""Incremental generation (blt_repro.generate): the cached generator equals the official recompute-everything
reference — same greedy bytes, same patches, logits within 1e-4 — on every BLTConfig branch and every causal patching
mode, and the global transformer computes each completed patch exactly once."""
import pytest
import torch

from blt_repro.baselines import PatcherConfig
from blt_repro.data import load_corpus
from blt_repro.entropy_model import EntropyModel, EntropyModelConfig
from blt_repro.generate import (GenerateConfig, as_prompt_ids, generate_cached, generate_recompute, sample_next,
                                scorer_entropies)
from blt_repro.model import BLT, BLTConfig
from blt_repro.ngram import NGramEntropyModel
from blt_repro.tokenizer import BOS_ID, EOS_ID, OFFSET, VOCAB_SIZE

torch.set_num_threads(1)

# Both paths compute in fp32 with the same weights, but the cached one sees other shapes (one new byte against a ring
# of cached keys instead of the whole row; a few patch slots instead of all of them), so its matmuls and softmaxes sum
# in another order. Measured: logits of size ~2 differ by <= 1e-6 on every branch below. 1e-4 leaves two orders of
# magnitude of margin; a real cache bug (a wrong mask, a missing or stale key, a wrong position) moves logits by 1e-2
# or more, and usually the greedy bytes too.
ATOL = 1e-4
GEN = GenerateConfig(max_new_bytes=8, stop_at_eos=False)


def make_prompts(n: int, seed: int = 0) -> list[list[int]]:
    "n random prompts of 1..40 ids; the longer ones hold an EOS then a BOS (a second document) in the middle."
    g = torch.Generator().manual_seed(seed)
    prompts = []
    for k in torch.randint(0, 40, (n,), generator=g).tolist():
        ids = [BOS_ID] + torch.randint(4, 260, (k,), generator=g).tolist()
        if k > 8: ids[k // 2], ids[k // 2 + 1] = EOS_ID, BOS_ID
        prompts.append(ids)
    return prompts


def assert_parity(model, prompts, patcher, scorer, gen=GEN):
    "generate_cached == generate_recompute: ids exactly, patches exactly, logits within ATOL; one global pass per patch."
    ref = generate_recompute(model, prompts, patcher, scorer, gen)
    got = generate_cached(model, prompts, patcher, scorer, gen, prefill_chunk=7)   # chunk borders fall everywhere
    assert got.tokens == ref.tokens
    assert got.patch_lengths == ref.patch_lengths
    assert max((a - b).abs().max().item() for a, b in zip(ref.logits, got.logits)) < ATOL
    assert got.global_patches == sum(len(l) - 1 for l in got.patch_lengths)        # each completed patch once
    return ref, got


@pytest.fixture(scope="module")
def setup():
    torch.manual_seed(0)
    cfg = BLTConfig.tiny(local_window=5, cross_attn_window_encoder=3, cross_attn_window_decoder=2, n_kv_heads_local=1,
                         n_layers_encoder=2, cross_attn_all_layers_encoder=True, n_kv_heads_global=2)
    model = BLT(cfg).eval()
    em = EntropyModel(EntropyModelConfig(dim=32, n_layers=2, n_heads=2, window=6)).eval()
    prompts = make_prompts(20)
    th = scorer_entropies(em, torch.tensor([prompts[0] + [OFFSET] * 30])).median().item()
    ng = NGramEntropyModel(order=4).fit(load_corpus("en", "train", max_bytes=20_000))
    modes = {"static": (PatcherConfig("static", patch_size=3), None),
             "space": (PatcherConfig("space", max_patch_length=4), None),
             "entropy_neural": (PatcherConfig("entropy", threshold=th), em),
             "entropy_ngram": (PatcherConfig("entropy", threshold=2.5), ng)}
    return model, prompts, modes


@pytest.mark.parametrize("mode", ["static", "space", "entropy_neural", "entropy_ngram"])
def test_cached_equals_recompute(setup, mode):
    model, prompts, modes = setup
    patcher, scorer = modes[mode]
    ref, got = assert_parity(model, prompts, patcher, scorer)
    assert got.global_patches < ref.global_patches


# Every branch of BLTConfig that changes the forward pass, on top of a base with grouped-query attention and a local
# window (5) shorter than most prompts; the prompts hold an EOS inside (document masks). Small models: d_local 32.
BASE = dict(d_local=32, d_global=64, n_heads_local=2, n_kv_heads_local=1, n_heads_global=4, n_kv_heads_global=2,
            local_window=5)
BRANCHES = {
    "default": {},                                                          # hash n-grams, document masks, double residual
    "no_encoder_xattn": dict(cross_attn_encoder=False),                     # max-pooled patches, input projection
    "no_decoder_xattn": dict(cross_attn_decoder=False),                     # gather + add
    "no_xattn": dict(cross_attn_encoder=False, cross_attn_decoder=False, d_global=32),   # and no input projection
    "decoder_xattn_first_layer_only": dict(n_layers_decoder=3, cross_attn_all_layers_decoder=False),
    "encoder_xattn_every_layer": dict(n_layers_encoder=3, cross_attn_all_layers_encoder=True),
    "encoder_xattn_every_layer_repool": dict(n_layers_encoder=3, cross_attn_all_layers_encoder=True,
                                             repool_every_layer=True),
    "queries_from_embeddings": dict(query_init="embedding", n_layers_encoder=2, cross_attn_all_layers_encoder=True),
    "single_residual": dict(double_residual=False),
    "windowed_xattn": dict(cross_attn_window_encoder=3, cross_attn_window_decoder=2, cross_attn_k=3),
    "gqa_xattn": dict(n_heads_cross=4, n_kv_heads_cross=2),
    "no_hash": dict(hash=None),
    "no_document_mask": dict(document_mask=False),
    "no_local_window": dict(local_window=None),
}


@pytest.fixture(scope="module")
def small_scorers():
    torch.manual_seed(1)
    em = EntropyModel(EntropyModelConfig(dim=16, n_layers=1, n_heads=2, window=4)).eval()
    th = scorer_entropies(em, torch.tensor(make_prompts(1, seed=3))).median().item()
    return {"static": (PatcherConfig("static", patch_size=3), None),
            "entropy_neural": (PatcherConfig("entropy", threshold=th, max_patch_length=5), em)}


@pytest.mark.parametrize("mode", ["static", "entropy_neural"])
@pytest.mark.parametrize("branch", list(BRANCHES))
def test_every_config_branch(small_scorers, branch, mode):
    torch.manual_seed(0)
    model = BLT(BLTConfig.tiny(**{**BASE, **BRANCHES[branch]})).eval()
    patcher, scorer = small_scorers[mode]
    assert_parity(model, make_prompts(6, seed=1), patcher, scorer, GenerateConfig(max_new_bytes=6, stop_at_eos=False))


def test_sampling_parity_and_batch(setup):
    model, prompts, modes = setup
    patcher, scorer = modes["entropy_neural"]
    gen = GenerateConfig(max_new_bytes=6, temperature=0.9, top_k=30, top_p=0.95, seed=5, stop_at_eos=False)
    ref = generate_recompute(model, prompts[:4], patcher, scorer, gen)
    got = generate_cached(model, prompts[:4], patcher, scorer, gen)
    assert got.tokens == ref.tokens
    same = generate_cached(model, ["abc", "zz", "abc"], patcher, scorer, GenerateConfig(max_new_bytes=10, stop_at_eos=False))
    assert same.tokens[0] == same.tokens[2]


def test_global_runs_once_per_new_patch():
    torch.manual_seed(0)
    model = BLT(BLTConfig.tiny()).eval()
    got = generate_cached(model, ["Hello"], PatcherConfig("static", patch_size=4), None,
                          GenerateConfig(max_new_bytes=16, stop_at_eos=False), prefill_chunk=512)
    # prompt: BOS + 5 bytes -> patches [1,4] complete, then one global call per completed patch of 4 new bytes
    assert got.global_patches == len(got.patch_lengths[0]) - 1
    assert got.global_calls == 1 + (got.global_patches - 2)


def test_stop_string_stops_generation():
    "A stop string taken from the middle of a free run ends the output right after its first occurrence."
    torch.manual_seed(0)
    model, space = BLT(BLTConfig.tiny()).eval(), PatcherConfig("space")
    free = generate_cached(model, ["x"], space, None, GenerateConfig(max_new_bytes=40, stop_at_eos=False)).new_ids()
    start = next(i for i in range(8, 30) if all(t >= OFFSET for t in free[i:i + 3]))
    stop = bytes(t - OFFSET for t in free[start:start + 3])               # 3 generated bytes, from position >= 8
    end = bytes(t - OFFSET if t >= OFFSET else 0 for t in free).find(stop) + 3   # where it first ends in the free run
    gen = GenerateConfig(max_new_bytes=40, stop=(b"\xff\xfe never", stop), stop_at_eos=False)
    for run in (generate_cached, generate_recompute):
        out = run(model, ["x"], space, None, gen).new_ids()
        assert out == free[:end] and len(out) < 40                       # stopped by the stop string, not the limit


def test_errors():
    logits = torch.full((VOCAB_SIZE,), -10.0); logits[BOS_ID] = 5.0; logits[OFFSET + 65] = 1.0
    assert sample_next(logits, GenerateConfig()) == OFFSET + 65
    with pytest.raises(ValueError, match="temperature"): GenerateConfig(temperature=-1)
    with pytest.raises(ValueError, match="top_p"): GenerateConfig(top_p=0)
    with pytest.raises(ValueError, match="BOS"): as_prompt_ids([70, 71])
    with pytest.raises(ValueError, match="not causal"):
        generate_cached(BLT(BLTConfig.tiny()), ["a"], PatcherConfig("entropy", patch_size=4.0), None)
