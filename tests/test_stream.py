"""Streaming training (17a_stream) end to end on CPU: a local Parquet dataset in 4 shards, its entropies precomputed by
`blt-repro entropies` (resumable, two ranks), a tiny BLT trained from it in streaming mode with 1 process and with 2
gloo processes under torchrun (the same losses), a streamed run killed with SIGKILL and resumed exactly, the offline
error for an unknown hub name, and `reproduce --preset paper --dry-run`."""
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch

from blt_repro.checkpoint import save_scorer, write_run_info
from blt_repro.data import DatasetUnavailableError, load_corpus
from blt_repro.entropy_model import ENTROPY_PRESETS, EntropyModel
from blt_repro.stream import resolve_source

ENV = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1"}
TRAIN = ["train", "--model", "blt", "--max-steps", "8", "--set", "seq_len=128", "--set", "batch_size=4",
         "--set", "log_every=1", "--set", "ckpt_every=2", "--set", "warmup_steps=2", "--set", "eval_bytes=20000",
         "--set", "progress=false", "--set", "check_leak=false", "--set", "precision=fp32"]
# One process and two sum the same fp32 numbers in another order (DDP's all-reduce of the gradients), so their losses
# differ by rounding: measured here at most 4.8e-7 absolute (~1 ulp of fp32 at a loss of ~5 nats) over 8 steps. The
# bound 1e-4 relative is the distributed test's of tests/test_train.py (see there): ~100x over that noise, and far
# below what reading other rows does (a different batch changes the first loss by ~1e-2 relative).
LOSS_RTOL = 1e-4


def _cli(*args, nproc=1, check=True, timeout=300):
    bindir = Path(sys.executable).parent
    head = ([str(bindir / "torchrun"), "--standalone", "--nproc-per-node", str(nproc), "-m", "blt_repro.cli"]
            if nproc > 1 else [sys.executable, "-m", "blt_repro.cli"])
    r = subprocess.run(head + [str(a) for a in args], env=ENV, capture_output=True, text=True, timeout=timeout)
    if check: assert r.returncode == 0, r.stderr[-3000:]
    return r


def _losses(run: Path) -> list[float]:
    return [json.loads(l)["loss"] for l in open(run / "metrics.jsonl") if '"loss"' in l]


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    "A ~2 MB Parquet dataset from the embedded corpus (4 training shards + 1 validation shard) and its entropies."
    root = tmp_path_factory.mktemp("stream")
    docs = load_corpus("en", "train", max_bytes=2_000_000)
    shards, per = root / "corpus", len(docs) // 5
    shards.mkdir()
    for i in range(4): pq.write_table(pa.table({"text": docs[i * per:(i + 1) * per]}), shards / f"train-{i:05d}-of-00004.parquet")
    pq.write_table(pa.table({"text": docs[4 * per:]}), shards / "validation-00000-of-00001.parquet")
    scorer_run = root / "scorer-run"                       # a run folder holding only a (random-init) entropy model
    scorer_run.mkdir()
    torch.manual_seed(0)
    write_run_info(scorer_run, {"family": "blt", "scorer": save_scorer(scorer_run, EntropyModel(ENTROPY_PRESETS["tiny"]))})
    ent = root / "entropies"
    common = ["entropies", "--dataset", shards, "--entropy-model", scorer_run, "--out", ent]
    first = json.loads(_cli(*common, "--num-proc", "2").stdout)            # two worker processes share the 5 shards
    assert first["shards"] == 5 and len(first["written_now"]) == 5, first
    (ent / "train-00001-of-00004.parquet").unlink()                          # as if killed before that shard was done
    again = json.loads(_cli(*common).stdout)
    assert list(again["written_now"]) == ["train-00001-of-00004.parquet"] and again["already_there"] == 4, again
    return {"root": root, "shards": shards, "entropies": ent}


def test_one_and_two_processes_train_the_same(data):
    "The global batch is the same for any number of processes (lanes), so the losses are, up to reduction order."
    one, two = data["root"] / "one", data["root"] / "two"
    _cli(*TRAIN, "--dataset", data["entropies"], "--out", one)
    _cli(*TRAIN, "--dataset", data["entropies"], "--out", two, nproc=2)
    a, b = _losses(one), _losses(two)
    assert len(a) == len(b) == 8
    assert max(abs(x - y) / abs(x) for x, y in zip(a, b)) < LOSS_RTOL, (a, b)
    s1, s2 = (json.loads((d / "summary.json").read_text()) for d in (one, two))
    assert s1["world_size"] == 1 and s2["world_size"] == 2 and s1["dataset"] == str(data["entropies"])
    assert abs(s1["val_bpb"] - s2["val_bpb"]) < 1e-4 * s1["val_bpb"]


def test_killed_streamed_run_resumes_exactly(data):
    "SIGKILL a streamed run after its first checkpoints and re-run the command: the same metrics as one straight run."
    ref, out = data["root"] / "ref", data["root"] / "killed"
    args = [*TRAIN, "--model", "space", "--max-steps", "12", "--dataset", data["shards"]]   # a byte family: text shards
    _cli(*args, "--out", ref)
    proc = subprocess.Popen([sys.executable, "-m", "blt_repro.cli", *map(str, args), "--out", str(out)], env=ENV,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 240
    while proc.poll() is None and not (out / "checkpoint-00000006").exists() and time.time() < deadline: time.sleep(0.01)
    killed = proc.poll() is None
    if killed: proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert killed, "the run finished before it could be killed"
    _cli(*args, "--out", out)
    assert _losses(out) == _losses(ref)                                      # exact: same process count, same order
    got, want = (json.loads((d / "summary.json").read_text()) for d in (out, ref))
    for k in ("val_bpb", "bytes_seen", "final_train_bpb", "steps"): assert got[k] == want[k], k


def test_unknown_hub_name_offline():
    "Offline, a hub name fails at once, naming the dataset and how to point at a local copy (library and CLI)."
    with pytest.raises(DatasetUnavailableError, match="cannot stream Hugging Face dataset 'no-such/corpus'.*local copy"):
        resolve_source("no-such/corpus")
    r = _cli("train", "--model", "byte", "--dataset", "no-such/corpus", check=False)
    assert r.returncode != 0 and "cannot stream Hugging Face dataset 'no-such/corpus'" in r.stderr


def test_paper_dry_run():
    "The plan of the paper's 1B-class runs, printed without training; on the embedded corpus the preset refuses."
    out = _cli("reproduce", "--preset", "paper", "--dry-run", "--nproc-per-node", "8").stdout
    rows = [l.split() for l in out.splitlines() if len(l.split()) == 10 and l.split()[0] in ("blt", "space", "static", "byte")]
    assert [r[0] for r in rows] == ["blt", "space", "static", "byte"] and "HuggingFaceFW/fineweb-edu:sample-100BT" in out
    assert 0.9 < float(rows[0][2].rstrip("B")) < 1.6                       # 1B-class without the hash tables
    r = _cli("train", "--preset", "paper", "--model", "byte", "--max-steps", "1", check=False)
    assert r.returncode != 0 and "trains on a real corpus" in r.stderr
