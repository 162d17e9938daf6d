"""Incremental generation (blt_repro.generate): the cached generator equals the official recompute-everything
reference — same greedy bytes, logits within 1e-4, same patches — for 20 random prompts and every causal patching
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


@pytest.fixture(scope="module")
def setup():
    torch.manual_seed(0)
    cfg = BLTConfig.tiny(local_window=5, cross_attn_window_encoder=3, cross_attn_window_decoder=2, n_kv_heads_local=1,
                         n_layers_encoder=2, cross_attn_all_layers_encoder=True, n_kv_heads_global=2)
    model = BLT(cfg).eval()
    em = EntropyModel(EntropyModelConfig(dim=32, n_layers=2, n_heads=2, window=6)).eval()
    g = torch.Generator().manual_seed(0)
    prompts = []
    for n in torch.randint(0, 40, (20,), generator=g).tolist():
        ids = [BOS_ID] + torch.randint(4, 260, (n,), generator=g).tolist()
        if n > 8: ids[n // 2], ids[n // 2 + 1] = EOS_ID, BOS_ID
        prompts.append(ids)
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
    gen = GenerateConfig(max_new_bytes=8, stop_at_eos=False)
    ref = generate_recompute(model, prompts, patcher, scorer, gen)
    got = generate_cached(model, prompts, patcher, scorer, gen, prefill_chunk=7)
    assert got.tokens == ref.tokens
    assert got.patch_lengths == ref.patch_lengths
    assert max((a - b).abs().max().item() for a, b in zip(ref.logits, got.logits)) < 1e-4
    assert got.global_patches == sum(len(l) - 1 for l in got.patch_lengths)        # each completed patch once
    assert got.global_patches < ref.global_patches


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


def test_stops_and_errors():
    logits = torch.full((VOCAB_SIZE,), -10.0); logits[BOS_ID] = 5.0; logits[OFFSET + 65] = 1.0
    assert sample_next(logits, GenerateConfig()) == OFFSET + 65
    with pytest.raises(ValueError, match="temperature"): GenerateConfig(temperature=-1)
    with pytest.raises(ValueError, match="BOS"): as_prompt_ids([70, 71])
    with pytest.raises(ValueError, match="not causal"):
        generate_cached(BLT(BLTConfig.tiny()), ["a"], PatcherConfig("entropy", patch_size=4.0), None)
    torch.manual_seed(0)
    model = BLT(BLTConfig.tiny()).eval()
    out = generate_cached(model, ["x"], PatcherConfig("space"), None, GenerateConfig(max_new_bytes=50, stop=(chr(0x7f),)))
    assert len(out.new_ids()) <= 50
