"""Parity with transformers' BltForCausalLM (random init, patch_in_forward=False, no network): same ids and patch
lengths give logits within 1e-4 (fp32 max abs) in both directions, on rows right-padded with zero-length patches."""
import warnings

import pytest
import torch

from blt_repro.hashing import HashNgramConfig as H
from blt_repro.hf import blt_from_hf, blt_from_pretrained, blt_to_hf, config_from_hf, config_to_hf, hf_name
from blt_repro.model import BLT, BLTConfig
from blt_repro.tokenizer import EOS_ID

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    import transformers
    from transformers import BltForCausalLM
transformers.logging.set_verbosity_error()

CONFIGS = {
    "tiny": dict(),
    "gqa_k3_projection_2fns": dict(d_local=48, d_global=96, n_heads_local=4, n_kv_heads_local=2, n_heads_global=6,
                                   n_kv_heads_global=3, cross_attn_k=3, hash=H(dim=48, group_sizes=(3, 4), n_functions=2, vocab=500)),
    "enc_all_layers_dec_first_window4": dict(n_layers_encoder=3, cross_attn_all_layers_encoder=True, repool_every_layer=True,
                                             cross_attn_all_layers_decoder=False, local_window=4),
    "k1_nohash_theta_ffn": dict(cross_attn_k=1, d_global=64, hash=None, rope_theta_local=500000.0, rope_theta_global=1000.0,
                                local_window=None, ffn_hidden_encoder=100, ffn_hidden_decoder=90, ffn_hidden_global=170),
    "3fns_sizes_eps_deep": dict(d_local=32, d_global=96, n_heads_local=2, n_layers_global=3, n_layers_decoder=3,
                                hash=H(dim=32, group_sizes=(2, 5, 8), n_functions=3, vocab=777), norm_eps=1e-6),
    "k4_projection_mqa": dict(d_local=32, d_global=64, cross_attn_k=4, n_heads_local=4, n_kv_heads_local=1,
                              n_heads_global=2, n_kv_heads_global=1, local_window=7,
                              hash=H(dim=32, group_sizes=(3, 4, 5, 6, 7, 8), n_functions=1, vocab=300)),
}


def _batch(S=20, seed=0):
    g = torch.Generator().manual_seed(seed)
    tokens = torch.randint(4, 260, (3, S), generator=g); tokens[:, 0] = 1
    lengths = torch.tensor([[1, 3, 4, 5, 4, 4], [1, 6, 6, 8, 0, 0], [1, 20, 0, 0, 0, 0]])   # sums S + 1
    return tokens, lengths


def _logits(port, tokens, lengths):
    return port(input_ids=tokens, patch_lengths=lengths, use_cache=False).logits


@pytest.mark.parametrize("name", list(CONFIGS))
def test_parity_both_directions(name):
    cfg = BLTConfig.tiny(document_mask=False, **CONFIGS[name])
    tokens, lengths = _batch()
    torch.manual_seed(0)
    ours = BLT(cfg).eval()
    with torch.no_grad():
        a = ours(tokens, lengths)
        assert (a - _logits(blt_to_hf(ours), tokens, lengths)).abs().max() < 1e-4
        port = BltForCausalLM(config_to_hf(cfg)).eval()
        ref = _logits(port, tokens, lengths)
        back = blt_from_hf(port)
        assert (back(tokens, lengths) - ref).abs().max() < 1e-4
        assert torch.isfinite(ref).all()
    no_ffn = {f"ffn_hidden_{p}": None for p in ("encoder", "global", "decoder")}
    assert back.config.to_dict() | no_ffn == cfg.to_dict() | no_ffn


def test_round_trip_weights_identical():
    torch.manual_seed(0)
    ours = BLT(BLTConfig.tiny(document_mask=False)).eval()
    again = blt_from_hf(blt_to_hf(ours))
    sd1, sd2 = ours.state_dict(), again.state_dict()
    assert sd1.keys() == sd2.keys() and all(torch.equal(sd1[k], sd2[k]) for k in sd1)


def test_unconvertible_configs_fail_loudly():
    with pytest.raises(ValueError, match="windows must be None"): config_to_hf(BLTConfig.tiny(cross_attn_window_decoder=2))
    with pytest.raises(ValueError, match="re-pools"): config_to_hf(BLTConfig.tiny(n_layers_encoder=2, cross_attn_all_layers_encoder=True))
    with pytest.raises(ValueError, match="double_residual"): config_to_hf(BLTConfig.tiny(double_residual=False))
    with pytest.raises(ValueError, match="local heads"): config_to_hf(BLTConfig.tiny(n_heads_cross=1))
    freq = H(dim=BLTConfig.tiny().d_local, group_sizes=(3, 4, 5), vocab=1024, kind="frequency")
    with pytest.raises(ValueError, match="hash n-gram tables only"): config_to_hf(BLTConfig.tiny(hash=freq))
    hcfg = config_to_hf(BLTConfig.tiny())
    hcfg.decoder_config.hidden_size = 32
    with pytest.raises(ValueError, match="hidden_size differ"): config_from_hf(hcfg)
    with pytest.raises(KeyError): hf_name("nonsense.weight")


def test_eos_document_mask_choice():
    torch.manual_seed(0)
    port = blt_to_hf(BLT(BLTConfig.tiny(document_mask=False)))
    tokens, lengths = _batch()
    x, L = tokens[:1].clone(), lengths[:1]
    x[0, 8] = EOS_ID
    with torch.no_grad():
        ref = _logits(port, x, L)
        assert (blt_from_hf(port)(x, L) - ref).abs().max() < 1e-4          # port semantics: EOS cuts nothing
        d = (blt_from_hf(port, document_mask=True)(x, L) - ref).abs().amax(-1)[0]
    assert d[:9].max() < 1e-5 and d[9:].max() > 1e-3


def test_pretrained_offline_error():
    with pytest.raises(OSError, match="network access"):
        blt_from_pretrained("facebook/blt-1b", local_files_only=True)
