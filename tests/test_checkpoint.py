"""Run folders (16_checkpoint): safetensors + JSON only, nothing unpickled; atomic checkpoints; self-contained
generation (no corpus); exact round trips of networks, optimizers and entropy scorers."""
import json
import pickle
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

import blt_repro.checkpoint as C
import blt_repro.data as data_module
from blt_repro.checkpoint import (RunFolderError, load_checkpoint, load_generator, load_network, load_scorer,
                                  optimizer_from_tensors, optimizer_to_tensors, read_run_info, save_checkpoint, save_scorer)
from blt_repro.generate import GenerateConfig, generate_cached
from blt_repro.train import TrainConfig, train

LIB = Path(__file__).resolve().parent.parent / "blt_repro"


class Planted:
    "A pickle that, when loaded, creates a marker file (open(path, 'w')): proof that loading ran code."
    def __init__(self, marker: Path): self.marker = str(marker)
    def __reduce__(self): return (open, (self.marker, "w"))


def plant(folder: Path, name: str, marker: Path) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / name).write_bytes(pickle.dumps(Planted(marker)))


def test_the_planted_pickle_really_runs_code_when_unpickled(tmp_path):
    "The probe itself can fail: unpickling it does create the marker (so its absence below means something)."
    marker = tmp_path / "ran"
    plant(tmp_path, "x.pt", marker)
    pickle.loads((tmp_path / "x.pt").read_bytes())
    assert marker.exists()


def test_library_never_unpickles():
    "No pickle loading anywhere in the exported library (torch.load is pickle underneath, even with weights_only)."
    pattern = re.compile(r"weights_only\s*=\s*False|pickle\.loads?\(|torch\.load\(")
    hits = [f"{p.name}:{i}" for p in LIB.glob("*.py") for i, line in enumerate(p.read_text().splitlines(), 1)
            if pattern.search(line)]
    assert hits == []


@pytest.fixture(scope="module")
def ngram_run(tmp_path_factory):
    "A few steps of the tiny BLT with n-gram entropy patches, in a run folder (n-gram: fitted in seconds)."
    out = tmp_path_factory.mktemp("runs") / "blt"
    cfg = TrainConfig(model="blt", entropy_source="ngram", max_steps=4, seq_len=64, batch_size=2, warmup_steps=1,
                      eval_bytes=3000, progress=False, check_leak=False, device="cpu", precision="fp32", out_dir=str(out))
    return out, train(cfg)


def test_run_folder_holds_only_safetensors_and_json(ngram_run):
    out, summary = ngram_run
    files = sorted(str(p.relative_to(out)) for p in out.rglob("*") if p.is_file())
    assert files == ["checkpoint-00000004/model.safetensors", "checkpoint-00000004/optimizer.safetensors",
                     "checkpoint-00000004/trainer_state.json", "latest.json", "metrics.jsonl", "ngram.safetensors",
                     "run.json", "summary.json"]
    info = read_run_info(out)
    assert info["family"] == "blt" and abs(info["patcher"]["threshold"] - summary["threshold"]) < 1e-6   # the summary rounds θ to 6 decimals
    assert info["scorer"]["kind"] == "ngram" and info["train_config"]["max_steps"] == 4


def test_generation_from_a_copied_folder_without_the_corpus(ngram_run, tmp_path, monkeypatch):
    "Copied elsewhere, corpus unreachable, a pickle planted: the same bytes as the objects it was trained with."
    out, _ = ngram_run
    model, patcher, scorer = load_generator(out)
    want = generate_cached(model, ["It was "], patcher, scorer, GenerateConfig(max_new_bytes=20)).tokens
    copy, marker = tmp_path / "copy", tmp_path / "ran"
    shutil.copytree(out, copy)
    plant(copy, "checkpoint.pt", marker)                      # a legacy name beside run.json: ignored, never opened
    plant(copy, "evil.pt", marker)
    def no_corpus(*a, **k): raise RuntimeError("the corpus is unavailable")
    monkeypatch.setattr(data_module, "load_corpus", no_corpus)
    monkeypatch.setattr(data_module, "load_corpus_records", no_corpus)
    model2, patcher2, scorer2 = load_generator(copy)
    got = generate_cached(model2, ["It was "], patcher2, scorer2, GenerateConfig(max_new_bytes=20)).tokens
    assert got == want and patcher2 == patcher and not marker.exists()


def test_ngram_scorer_round_trip_scores_identically(ngram_run, tmp_path):
    out, _ = ngram_run
    scorer = load_scorer(out, read_run_info(out)["scorer"])
    spec = save_scorer(tmp_path, scorer)
    again = load_scorer(tmp_path, spec)
    x = torch.tensor([[1] + [b + 4 for b in "The quick brown fox jumps over the lazy dog.".encode()]])
    assert torch.equal(scorer.entropies(x), again.entropies(x))


def test_neural_scorer_round_trip(tmp_path):
    from blt_repro.entropy_model import ENTROPY_PRESETS, EntropyModel
    torch.manual_seed(0)
    m = EntropyModel(ENTROPY_PRESETS["tiny"]).eval()
    again = load_scorer(tmp_path, save_scorer(tmp_path, m))
    x = torch.randint(4, 260, (2, 40))
    assert torch.equal(m(x), again(x))


def test_legacy_folder_is_refused_without_being_opened(tmp_path):
    marker = tmp_path / "ran"
    plant(tmp_path / "old", "checkpoint.pt", marker)
    with pytest.raises(RunFolderError, match="older blt-repro"): load_generator(tmp_path / "old")
    with pytest.raises(RunFolderError, match="older blt-repro"):
        train(TrainConfig(model="byte", max_steps=2, seq_len=32, batch_size=2, progress=False, out_dir=str(tmp_path / "old")))
    for args in (["generate", "--checkpoint", str(tmp_path / "old"), "hi"],
                 ["train", "--model", "byte", "--max-steps", "2", "--out", str(tmp_path / "old")]):
        r = subprocess.run([sys.executable, "-m", "blt_repro.cli", *args], capture_output=True, text=True, timeout=300)
        assert r.returncode == 2 and "older blt-repro" in r.stderr and "Traceback" not in r.stderr, r.stderr
    assert not marker.exists()


def test_resume_ignores_planted_pickles(tmp_path):
    "A resumed train reads only its safetensors/JSON: planted pickles in the folder are never opened."
    marker = tmp_path / "ran"
    base = dict(model="byte", max_steps=4, seq_len=32, batch_size=2, warmup_steps=1, progress=False, check_leak=False,
                eval_bytes=2000, device="cpu", precision="fp32", out_dir=str(tmp_path / "run"))
    train(TrainConfig(**base, stop_at=2))
    for name in ("checkpoint.pt", "model.pt", "optimizer.pkl", "checkpoint-00000002/extra.pt"):
        plant(tmp_path / "run", name, marker)
    assert train(TrainConfig(**base))["steps"] == 4 and not marker.exists()


def test_network_reloads_to_equal_logits(ngram_run):
    out, _ = ngram_run
    net = load_network(out)
    state = C.load_tensors(C.latest_checkpoint(out) / C.MODEL_FILE)
    assert all(torch.equal(net.state_dict()[k], v) for k, v in state.items()) and len(state) == len(net.state_dict())


def test_optimizer_round_trip_through_json():
    net = nn.Sequential(nn.Linear(3, 4), nn.Linear(4, 2))
    opt = torch.optim.AdamW(net.parameters(), lr=1e-3, betas=(0.8, 0.9))
    for _ in range(2):
        net(torch.randn(5, 3)).sum().backward(); opt.step()
    tensors, meta = optimizer_to_tensors(opt.state_dict())
    back = optimizer_from_tensors(tensors, json.loads(json.dumps(meta)))
    opt2 = torch.optim.AdamW(net.parameters(), lr=1.0)
    opt2.load_state_dict(back)
    a, b = opt.state_dict(), opt2.state_dict()
    assert a["param_groups"] == b["param_groups"]
    assert all(torch.equal(a["state"][k][n], b["state"][k][n]) for k in a["state"] for n in a["state"][k])


def test_a_kill_inside_a_checkpoint_write_keeps_the_previous_one(tmp_path, monkeypatch):
    net = nn.Linear(2, 2)
    opt = torch.optim.AdamW(net.parameters())
    save_checkpoint(tmp_path, 2, net.state_dict(), opt.state_dict(), {"bytes_seen": 1.0})
    for victim in ("save_tensors", "write_json"):              # die while writing the weights, or the trainer state
        calls = {"n": 0}
        real = getattr(C, victim)
        def dies(*a, _real=real, **k):
            calls["n"] += 1
            if calls["n"] == 2: raise KeyboardInterrupt("killed")
            return _real(*a, **k)
        monkeypatch.setattr(C, victim, dies)
        with pytest.raises(KeyboardInterrupt): save_checkpoint(tmp_path, 4, net.state_dict(), opt.state_dict(), {"bytes_seen": 2.0})
        monkeypatch.setattr(C, victim, real)
        _, _, state = load_checkpoint(tmp_path)
        assert state["step"] == 2 and state["bytes_seen"] == 1.0
    save_checkpoint(tmp_path, 6, net.state_dict(), opt.state_dict(), {"bytes_seen": 3.0})
    assert sorted(p.name for p in tmp_path.iterdir()) == ["checkpoint-00000006", "latest.json"]


def test_blt_save_pretrained_round_trips_exactly(tmp_path):
    "BLT.save_pretrained / from_pretrained: config.json + model.safetensors, equal config, weights and logits."
    from blt_repro.model import BLT, BLTConfig
    from blt_repro.patching import space_patch_lengths
    torch.manual_seed(0)
    model = BLT(BLTConfig.tiny(cross_attn_k=3, n_kv_heads_local=1)).eval()
    model.save_pretrained(tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["config.json", "model.safetensors"]
    again = BLT.from_pretrained(tmp_path)
    assert again.config == model.config and not again.training
    assert all(torch.equal(a, b) for a, b in zip(model.state_dict().values(), again.state_dict().values()))
    x = torch.tensor([[1] + [b + 4 for b in "a round trip".encode()]])
    lengths = space_patch_lengths(x, include_next_token=True)
    with torch.no_grad(): assert torch.equal(model(x, lengths), again(x, lengths))


def test_frequency_ngram_vocabulary_travels_with_the_run_folder(tmp_path):
    "kind='frequency': build_network fits the vocabularies on the training stream; the run folder keeps them (buffers)."
    from blt_repro.hashing import FrequencyNgramEmbedding
    from blt_repro.model import TINY_BLT
    hash_cfg = {**TINY_BLT["hash"], "kind": "frequency"}
    cfg = TrainConfig(model="space", max_steps=2, seq_len=64, batch_size=2, warmup_steps=1, eval_bytes=3000, progress=False,
                      check_leak=False, device="cpu", precision="fp32", out_dir=str(tmp_path / "freq"),
                      model_config={"hash": hash_cfg})
    train(cfg)
    net = load_network(tmp_path / "freq")
    hem = net.encoder_hash_tok_embedding
    assert isinstance(hem, FrequencyNgramEmbedding)
    for n in hash_cfg["group_sizes"]:
        vocab = getattr(hem, f"vocab_{n}")
        assert (vocab >= 0).all() and bool((vocab[1:] > vocab[:-1]).all())   # fitted: distinct keys, ascending
    x = torch.tensor([[1] + [4 + b for b in b" the cat and the dog"]])
    assert (hem.rows(x, 0, 3) > 0).any() and (hem.rows(x, 0, 3) == 0).any()   # common 3-grams kept, others dropped
    assert all(float(t.weight[0].detach().abs().sum()) == 0 for t in hem.tables)   # row 0 stayed zero through training
