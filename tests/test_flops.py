"""Parameter counts and FLOPs (09_flops): the blt_facts §7.8 counts, analytic == actual parameter counts, analytic
matmul/attention FLOPs == torch's FlopCounterMode on real forward passes, and scaling properties."""
import dataclasses

import pytest
import torch

from blt_repro.entropy_model import ENTROPY_PRESETS, EntropyModel, EntropyModelConfig
from blt_repro.flops import (ATTENTION_MODES, BLT_FLOP_PARTS, BLT_PARAM_PARTS, attention_keys, attention_keys_loop,
                             blt_1b_config, blt_flop_terms, blt_flops_per_byte, blt_param_breakdown,
                             bpe_transformer_flops_per_byte, byte_transformer_flops_per_byte, count_params,
                             debug_config, entropy_model_flops_per_byte, entropy_model_params, lm_params,
                             measured_blt_flops, measured_flops, paper_blt_flops_per_byte, paper_bpe_flops_per_byte,
                             paper_tf, training_flops, transformer_flops_per_token)
from blt_repro.layers import TransformerConfig
from blt_repro.model import BLT, BLTConfig

VARIANTS = {"tiny": {}, "gqa": dict(n_kv_heads_local=1, n_kv_heads_global=2, n_heads_cross=4, n_kv_heads_cross=2),
            "k3_input_proj": dict(cross_attn_k=3), "no_hash": dict(hash=None),
            "enc_all_layers": dict(n_layers_encoder=3, cross_attn_all_layers_encoder=True),
            "enc_repool": dict(n_layers_encoder=2, cross_attn_all_layers_encoder=True, repool_every_layer=True),
            "dec_first_only": dict(n_layers_decoder=3, cross_attn_all_layers_decoder=False),
            "no_enc_xattn": dict(cross_attn_encoder=False), "no_dec_xattn": dict(cross_attn_decoder=False),
            "query_init_embedding": dict(query_init="embedding"),
            "ffn_widths": dict(ffn_hidden_encoder=100, ffn_hidden_global=300, ffn_hidden_decoder=120),
            "banded_local": dict(local_window=8), "xattn_windows": dict(cross_attn_window_encoder=3, cross_attn_window_decoder=2)}


def m(n: float, digits: int = 1) -> str: return f"{n / 1e6:,.{digits}f}M"


def test_blt_facts_7_8_counts():
    debug, b1, b1hf = blt_param_breakdown(debug_config()), blt_param_breakdown(blt_1b_config()), \
        blt_param_breakdown(blt_1b_config(hf_defaults=True))
    assert (m(debug["total"]), m(debug["total_without_hash"])) == ("86.3M", "47.9M")
    for b in (b1, b1hf):
        assert (m(b["total"], 0), m(b["total_without_hash"], 0)) == ("4,534M", "1,462M")
        assert m(b["hash_tables"]) == "3,072.0M" and m(b["global_layers"]) == "1,284.6M"
        assert (m(b["decoder_layers"]), m(b["decoder_xattn"] - b["decoder_patch_proj"]), m(b["decoder_patch_proj"]),
                m(b["head"])) == ("115.6M", "37.8M", "4.2M", "0.3M")
        assert (m(b["encoder_xattn"] - b["encoder_query_proj"]), m(b["encoder_query_proj"])) == ("4.2M", "2.1M")
    assert m(b1["encoder_layers"], 2) == "12.85M"        # §7.8 quotes 12.9M: a double rounding of 12.847M
    assert (m(debug["encoder_layers"]), m(debug["hash_tables"]), m(debug["global_layers"]),
            m(debug["global_input_proj"]), m(debug["encoder_query_proj"])) == ("6.8M", "38.4M", "27.3M", "1.0M", "0.5M")
    assert m(entropy_model_params(ENTROPY_PRESETS["paper"])) == "99.5M"


def test_paper_configs_match_meta_modules_and_hf():
    with torch.device("meta"):
        assert count_params(BLT(debug_config())) == blt_param_breakdown(debug_config())["total"]
        assert count_params(BLT(blt_1b_config())) == blt_param_breakdown(blt_1b_config())["total"] == 4_533_879_808
        assert count_params(EntropyModel(ENTROPY_PRESETS["paper"])) == 99_512_064
    transformers = pytest.importorskip("transformers")
    from blt_repro.hf import config_from_hf
    hf = config_from_hf(transformers.BltConfig())
    assert blt_1b_config(hf_defaults=True) == hf
    assert blt_1b_config() == dataclasses.replace(hf, ffn_hidden_encoder=2816)


@pytest.mark.parametrize("name", list(VARIANTS))
def test_param_breakdown_equals_module(name):
    cfg = BLTConfig.tiny(**VARIANTS[name])
    with torch.device("meta"): model = BLT(cfg)
    bd = blt_param_breakdown(cfg)
    assert bd["total"] == count_params(model) == sum(bd[p] for p in BLT_PARAM_PARTS)
    assert bd["hash_tables"] == (count_params(model.encoder_hash_tok_embedding) if cfg.hash else 0)
    assert bd["global_layers"] == count_params(model.global_transformer.layers)
    assert bd["decoder_xattn"] == count_params(model.local_decoder.cross_attn_layers) + \
        count_params(model.local_decoder.patch_embedding_projection)


def test_lm_params():
    for cfg in (ENTROPY_PRESETS["tiny"], EntropyModelConfig(dim=96, n_layers=3, n_heads=6)):
        assert entropy_model_params(cfg) == count_params(EntropyModel(cfg))
    tc = TransformerConfig(dim=64, n_layers=2, n_heads=4)
    assert lm_params(tc, 1000) - lm_params(tc, 1000, tied=True) == 64 * 1000


@pytest.mark.parametrize("window", [None, 1, 5, 16, 40])
def test_attention_keys_closed_form(window):
    for n in (1, 9, 33, 100):
        for mode in ATTENTION_MODES:
            assert attention_keys(n, window, mode) == pytest.approx(attention_keys_loop(n, window, mode), rel=1e-6)
    with pytest.raises(ValueError, match="attention must be one of"): attention_keys(10, None, "dense")


def _tokens_lengths(B=2, S=40, ps=4):
    tokens = torch.randint(4, 260, (B, S), generator=torch.Generator().manual_seed(0)); tokens[:, 0] = 1
    lengths = [1] + [ps] * (S // ps) + ([S % ps] if S % ps else [])      # BOS alone, then ps bytes; sum S+1
    return tokens, torch.tensor([lengths] * B)


@pytest.mark.parametrize("name", list(VARIANTS))
def test_blt_flops_equal_flop_counter(name):
    cfg = BLTConfig.tiny(**VARIANTS[name])
    torch.manual_seed(0)
    model = BLT(cfg).eval()
    tokens, lengths = _tokens_lengths()
    B, S = tokens.shape
    ps = S / lengths.shape[1]
    terms = blt_flop_terms(cfg, ps, S, "kernel")
    matmuls = measured_blt_flops(model, tokens, lengths)                       # CPU SDPA: counted as 0
    counted = measured_blt_flops(model, tokens, lengths, count_attention=True)  # math SDPA: bmm's counted
    for p in BLT_FLOP_PARTS:
        assert matmuls[p] == pytest.approx(terms[p][0] * B * S, rel=1e-9, abs=1e-6)
        assert counted[p] == pytest.approx(sum(terms[p]) * B * S, rel=1e-9, abs=1e-6)
    f = blt_flops_per_byte(cfg, ps, S, "kernel")
    assert matmuls["total"] == pytest.approx(f["linear"] * B * S, rel=1e-9)
    assert counted["total"] == pytest.approx(f["total"] * B * S, rel=1e-9)


@pytest.mark.parametrize("window", [256, 8])      # dense mask, then the banded kernel (2W < S)
def test_entropy_model_flops_equal_flop_counter(window):
    cfg = EntropyModelConfig(dim=64, n_layers=2, n_heads=4, window=window)
    model, x = EntropyModel(cfg).eval(), torch.randint(4, 260, (2, 40))
    f = entropy_model_flops_per_byte(cfg, 40, "kernel")
    assert measured_flops(model, x)["Global"] == pytest.approx(f["linear"] * 80, rel=1e-9)
    assert measured_flops(model, x, count_attention=True)["Global"] == pytest.approx(f["total"] * 80, rel=1e-9)


def test_scaling_properties():
    cfg = blt_1b_config()
    for mode in ATTENTION_MODES:
        a, b = blt_flop_terms(cfg, 3.0, 6000, mode), blt_flop_terms(cfg, 6.0, 6000, mode)
        assert a["global"][0] == pytest.approx(2 * b["global"][0])          # global matmuls per byte ∝ 1/ps
        assert a["encoder"] == b["encoder"] and a["decoder"] == b["decoder"] and a["head"] == b["head"]
    a, b = blt_flop_terms(cfg, 3.0, 6000, "context"), blt_flop_terms(cfg, 6.0, 6000, "context")
    assert a["global"][1] == pytest.approx(4 * b["global"][1])              # global attention over P = n/ps: ∝ 1/ps^2
    totals = [blt_flops_per_byte(cfg, ps, 8192)["total"] for ps in (1, 2, 4, 8, 16)]
    assert all(x > y for x, y in zip(totals, totals[1:]))
    c, ca, k = (blt_flops_per_byte(cfg, 4.5, 8192, mode)["total"] for mode in ("context", "causal", "kernel"))
    assert ca < c < k
    tc = TransformerConfig(dim=128, n_layers=2, n_heads=4)
    assert bpe_transformer_flops_per_byte(tc, 1000, 4.0, 256)["total"] == \
        pytest.approx(transformer_flops_per_token(tc, 1000, 256)["total"] / 4)
    assert byte_transformer_flops_per_byte(tc, 512)["head"] == 2 * 128 * 260
    with pytest.raises(ValueError, match="patch_size"): blt_flops_per_byte(cfg, 0.5, 100)


def test_paper_accounting():
    assert paper_tf(10, 2, 5, 7) == 2 * (24 * 100 + 4 * 5 * 10) + 2 * 10 * 7
    assert paper_bpe_flops_per_byte(1280, 24, 8192 / 3.7, 32_000, 3.7, causal=True) == pytest.approx(3.1e8, rel=0.02)
    assert paper_bpe_flops_per_byte(3072, 32, 8192 / 3.7, 32_000, 3.7, causal=True) == pytest.approx(2.1e9, rel=0.02)
    p, e = paper_blt_flops_per_byte(blt_1b_config(), 4.5, 8192), blt_flops_per_byte(blt_1b_config(), 4.5, 8192)
    assert e["total"] / p["total"] == pytest.approx(1.02, abs=0.01)
    assert p["total"] == pytest.approx(sum(p[k] for k in BLT_FLOP_PARTS))
    assert training_flops(2.0) == 6.0
