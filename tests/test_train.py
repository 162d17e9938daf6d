"""Training loop (11_train) and CLI `train`: config validation, exact resume, and the distributed path — 2 gloo
processes through torchrun (DDP, and FSDP2) give the losses of one process on the same global batch."""
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from blt_repro.cli import build_parser, train_config_from_args
from blt_repro.evaluate import LeakSuspected, check_no_leak
from blt_repro.train import RowSampler, TrainConfig, lr_at, train

FAST = ["--set", "seq_len=64", "--set", "batch_size=4", "--set", "log_every=1", "--set", "eval_bytes=4000",
        "--set", "progress=false", "--set", "check_leak=false", "--set", "warmup_steps=2"]


def _cli(args, out, nproc=1):
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    bindir = Path(sys.executable).parent
    cmd = ([str(bindir / "torchrun"), "--nproc-per-node", str(nproc), "-m", "blt_repro.cli"] if nproc > 1
           else [sys.executable, "-m", "blt_repro.cli"]) + ["train", *args, "--out", str(out)]
    r = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    return [json.loads(l) for l in open(out / "metrics.jsonl") if '"loss"' in l], json.loads((out / "summary.json").read_text())


def test_config_errors():
    with pytest.raises(ValueError, match="d_globl"): TrainConfig(model_config={"d_globl": 1})
    with pytest.raises(ValueError, match="no patcher"): TrainConfig(model="bpe", patcher={"patch_size": 4})
    with pytest.raises(ValueError, match="exactly one of"): TrainConfig(max_steps=None)
    with pytest.raises(ValueError, match="precision"): TrainConfig(precision="fp8")
    with pytest.raises(ValueError, match="unknown"): TrainConfig.from_dict({"lr": 1e-3, "lrr": 1})
    with pytest.raises(ValueError, match="lrr"): train_config_from_args(build_parser().parse_args(["train", "--set", "lrr=1"]))


def test_cli_rejects_bad_fields_before_work(tmp_path):
    r = subprocess.run([sys.executable, "-m", "blt_repro.cli", "train", "--set", "model.d_local=-3", "--out", str(tmp_path / "x")],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 2 and "d_local" in r.stderr and not (tmp_path / "x").exists()


def test_schedule_and_sampler():
    c = TrainConfig(lr=1.0, warmup_steps=4, min_lr_ratio=0.1)
    assert lr_at(0, c, 20) == 0.25 and lr_at(3, c, 20) == 1.0 and abs(lr_at(20, c, 20) - 0.1) < 1e-12
    s = RowSampler(7, 3, seed=1)
    seen = [i for step in range(7) for i in s.batch(step)]                 # 21 samples = 3 epochs of 7 rows
    assert all(sorted(seen[e * 7:(e + 1) * 7]) == list(range(7)) for e in range(3))


def test_leak_alarm():
    with pytest.raises(LeakSuspected): check_no_leak(2.0, 0.3)
    check_no_leak(2.0, 2.1)


def test_exact_resume(tmp_path):
    base = dict(model="static", max_steps=10, seq_len=64, batch_size=4, warmup_steps=2, log_every=1, progress=False,
                check_leak=False, eval_bytes=4000)
    a, b = tmp_path / "a", tmp_path / "b"
    train(TrainConfig(**base, out_dir=str(a)))
    train(TrainConfig(**base, out_dir=str(b), stop_at=4))
    assert not (b / "summary.json").read_text().count("val_bpb")           # killed runs are not validated
    train(TrainConfig(**base, out_dir=str(b)))
    la = [json.loads(l) for l in open(a / "metrics.jsonl")]
    lb = [json.loads(l) for l in open(b / "metrics.jsonl")]
    assert [r["step"] for r in la] == [r["step"] for r in lb] == list(range(1, 11))
    assert max(abs(p["loss"] - q["loss"]) + abs(p["grad_norm"] - q["grad_norm"]) for p, q in zip(la, lb)) < 1e-6
    with pytest.raises(ValueError, match="different config"): train(TrainConfig(**{**base, "lr": 1e-4}, out_dir=str(b)))


@pytest.mark.parametrize("model,extra", [("byte", []), ("static", ["--set", "fsdp=true"])])
def test_two_gloo_processes_equal_one(tmp_path, model, extra):
    one, _ = _cli(["--model", model, "--max-steps", "3", *FAST], tmp_path / "one")
    two, summary = _cli(["--model", model, "--max-steps", "3", *FAST, *extra], tmp_path / "two", nproc=2)
    assert summary["world_size"] == 2 and len(one) == len(two) == 3
    for p, q in zip(one, two):
        assert abs(p["loss"] - q["loss"]) < 1e-5 and abs(p["grad_norm"] - q["grad_norm"]) < 1e-5
        assert p["bytes_seen"] == q["bytes_seen"]


def test_train_with_prebuilt_data_matches_build_data():
    "train(cfg, data=build_data(cfg)) is the same run as train(cfg): the entropy-model ablation relies on it."
    from blt_repro.train import build_data
    cfg = TrainConfig(model="space", max_steps=3, seq_len=64, batch_size=2, warmup_steps=1, eval_bytes=2000,
                      progress=False, check_leak=False, device="cpu", precision="fp32")
    a, b = train(cfg), train(cfg, data=build_data(cfg))
    assert a["final_train_bpb"] == b["final_train_bpb"] and a["val_bpb"] == b["val_bpb"]
