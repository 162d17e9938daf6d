"""Learned chunking (10a_learned): causality on random strings and on corpus text, a leaky router caught by the same
probe, the smoothing's closed form against its recurrence, parameter and FLOP formulas against the module, and the
family end to end through the training loop, the run folder and the CLI."""
import json
import os
import subprocess
import sys

import pytest
import torch

from blt_repro.data import load_corpus
from blt_repro.flops import count_params, measured_flops
from blt_repro.learned import (LearnedChunkConfig, LearnedChunkLM, Router, boundary_probs, learned_flops_per_byte,
                               learned_param_breakdown, ratio_loss, select_chunks, smooth_chunks)
from blt_repro.tokenizer import EOS_ID, ByteTokenizer

# Bound of the causality probe. A later byte can change how many chunks a row has, so the main network's matrices
# change shape and fp32 sums run in another order (~1e-7 relative of logits of size ~10); a leak moves the logits by
# far more (the look-ahead router below: > 1e-2 at some probed position). 1e-4 sits orders of magnitude from both.
CAUSAL_TOL = 1e-4


def _random_model(seed=1, **kw):
    "A tiny model with a randomised router and skip path, so that boundaries and the residual both matter."
    torch.manual_seed(seed)
    m = LearnedChunkLM(LearnedChunkConfig.tiny(**{"window": 16, **kw})).eval()
    with torch.no_grad():
        m.router.wq.weight.normal_(0, 0.3); m.residual.weight.normal_(0, 0.1); m.pad.normal_()
    return m


def _suffix_change(model, x, t, seed=0):
    "Max change of the logits at positions <= t when every byte after t is replaced at random."
    y = x.clone()
    y[:, t + 1:] = torch.randint(4, 260, y[:, t + 1:].shape, generator=torch.Generator().manual_seed(seed))
    with torch.no_grad(): return (model(x)[:, :t + 1] - model(y)[:, :t + 1]).abs().max().item()


def _inputs():
    rand = torch.randint(4, 260, (3, 80), generator=torch.Generator().manual_seed(0))
    rand[1, 30] = EOS_ID                                                  # a document boundary inside a row
    text = " ".join(load_corpus("en", "validation", max_bytes=4000))
    corpus = torch.tensor([ByteTokenizer().encode(text)[i:i + 80] for i in (0, 500, 1500)])
    return {"random": rand, "corpus": corpus}


@pytest.mark.parametrize("kind", ["random", "corpus"])
@pytest.mark.parametrize("seed", [1, 2])
def test_causal(kind, seed):
    model, x = _random_model(seed), _inputs()[kind]
    with torch.no_grad(): model(x)
    rate = model.boundaries.float().mean().item()
    assert 0.05 < rate < 0.95, rate                                       # boundaries exist and vary: the probe has teeth
    assert max(_suffix_change(model, x, t, s) for t in (0, 3, 11, 29, 30, 31, 50, 78) for s in range(2)) < CAUSAL_TOL


class LookAheadRouter(Router):
    "A deliberately leaky router: p_t compares byte t with byte t+1."
    def forward(self, h, starts):
        p = boundary_probs(self.wq(h).flip(1), self.wk(h).flip(1), torch.zeros_like(starts)).flip(1)
        p = torch.where(starts, torch.ones_like(p), p)
        return p, p >= 0.5


@pytest.mark.parametrize("kind", ["random", "corpus"])
def test_leaky_router_is_caught(kind):
    good, x = _random_model(), _inputs()[kind]
    leaky = LearnedChunkLM(good.cfg).eval()
    leaky.router = LookAheadRouter(good.cfg.d_outer)
    leaky.load_state_dict(good.state_dict())
    assert max(_suffix_change(leaky, x, t) for t in (3, 11, 29, 50)) > 100 * CAUSAL_TOL     # the probe fires


def test_smoothing_matches_recurrence_and_padding():
    torch.manual_seed(0)
    z, P = torch.randn(2, 60, 5, dtype=torch.float64), torch.rand(2, 60, dtype=torch.float64)
    Pc, prev, ref = P.clamp(1e-4, 1 - 1e-4), torch.zeros(2, 5, dtype=torch.float64), []
    for j in range(60):
        prev = Pc[:, j, None] * z[:, j] + (1 - Pc[:, j, None]) * prev
        ref.append(prev)
    # float64 in, float64 out; the closed form computes in float32 (1.2e-7 per op, ~60 chained factors, |z| < 4)
    assert (smooth_chunks(z, P) - torch.stack(ref, 1)).abs().max() < 1e-4
    # chunks after j never change z̄_j (padding sits after the valid chunks)
    z2 = z.clone(); z2[:, 40:] = 99
    assert torch.equal(smooth_chunks(z, P)[:, :40], smooth_chunks(z2, P)[:, :40])


def test_select_chunks_and_ratio_loss():
    b = torch.tensor([[True, False, True, True], [True, False, False, False]])
    h = torch.arange(8.).view(2, 4, 1)
    chunks, pos, valid = select_chunks(h, b)
    assert pos.tolist() == [[0, 2, 3], [0, 1, 2]] and valid.tolist() == [[True] * 3, [True, False, False]]
    assert chunks[0, :, 0].tolist() == [0., 2., 3.]
    N = 4.0
    def on_line(f):                                                       # F = G = f: one boundary every 1/f bytes
        b = torch.arange(64) % round(1 / f) == 0
        return ratio_loss(b, b.float().mean().expand(64), N).item()
    assert on_line(1 / 4) == pytest.approx(1.0)                           # the minimum, at the target
    assert on_line(1 / 2) == pytest.approx(4 / 3) and on_line(1 / 8) == pytest.approx(4 / 3 * (3 / 64 + 49 / 64))


@pytest.mark.parametrize("overrides", [{}, {"n_layers_encoder": 2, "d_main": 64}, {"window": None, "n_layers_decoder": 2}])
def test_param_and_flop_formulas(overrides):
    model = _random_model(**overrides)
    assert learned_param_breakdown(model.cfg)["total"] == count_params(model)
    x = _inputs()["random"][:1]
    counted = measured_flops(model, x)["Global"]                          # matmuls only on CPU (SDPA counts 0)
    S, n = x.shape[1], int(model.boundaries.sum())
    c, f = model.cfg, learned_flops_per_byte(model.cfg, x.shape[1] / n, x.shape[1])
    from blt_repro.flops import attention_keys, attention_score_flops
    attn = (c.n_layers_encoder + c.n_layers_decoder) * attention_score_flops(c.d_outer, attention_keys(S, c.window)) * S \
        + c.n_layers_main * attention_score_flops(c.d_main, attention_keys(n, None)) * n
    dense_smoothing = 2 * n * n * c.d_outer                               # the implementation's [M,M] product
    assert counted == pytest.approx(S * (f["total"] - f["smoothing"]) - attn + dense_smoothing, rel=1e-9)


def test_train_resume_and_cli(tmp_path):
    from blt_repro.checkpoint import load_network
    from blt_repro.train import TrainConfig, train
    cfg = TrainConfig(model="learned", max_steps=6, seq_len=64, batch_size=4, warmup_steps=2, log_every=2, eval_bytes=4000,
                      progress=False, check_leak=False, precision="fp32", out_dir=str(tmp_path / "a"))
    summary = train(cfg)
    lines = [json.loads(l) for l in open(tmp_path / "a" / "metrics.jsonl")]
    assert all(1.0 <= l["bytes_per_patch"] <= 64 for l in lines)         # the boundary rate is logged
    assert summary["bytes_per_patch"] >= 1.0 and summary["val_bpb"] > 0
    net, x = load_network(tmp_path / "a"), torch.randint(4, 260, (2, 40))
    assert isinstance(net, LearnedChunkLM) and net(x).shape == (2, 40, 260)
    # the ratio loss reaches the router: its weights moved away from the identity
    assert not torch.equal(net.router.wq.weight, torch.eye(net.cfg.d_outer))
    # the same run through the CLI, killed after 3 steps and resumed, ends with the same metrics
    base = [sys.executable, "-m", "blt_repro.cli", "train", "--model", "learned", "--max-steps", "6", "--out", str(tmp_path / "b"),
            *[a for kv in ("seq_len=64", "batch_size=4", "warmup_steps=2", "log_every=2", "eval_bytes=4000", "progress=false",
                           "check_leak=false", "precision=fp32", "ckpt_every=3") for a in ("--set", kv)]]
    for extra in (["--set", "stop_at=3"], []):                            # killed after step 3, then the same command again
        r = subprocess.run(base + extra, capture_output=True, text=True, timeout=300, env={**os.environ, "OMP_NUM_THREADS": "1"})
        assert r.returncode == 0, r.stderr[-2000:]
    resumed = [json.loads(l) for l in open(tmp_path / "b" / "metrics.jsonl")]
    assert [l["step"] for l in resumed] == [l["step"] for l in lines]
    # same seeds and data; only the thread count differs (this process vs OMP_NUM_THREADS=1), which reorders fp32 sums
    assert resumed[-1]["loss"] == pytest.approx(lines[-1]["loss"], rel=1e-5)
