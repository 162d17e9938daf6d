"""FLOP-matched comparison (issue 5): every family trained to the same training FLOPs on the preset's data.

Usage: python scripts/flop_matched.py --preset tiny --train-flops 4e12 --out figures/tiny/flop_matched_4e12
Writes <out>/results.json (one summary per model) and <out>/table.md (the table, the command, the machine)."""
import argparse
import json
import platform
import sys
import time
from pathlib import Path

import torch

from blt_repro.train import TrainConfig, train

RUNS = {  # name -> TrainConfig overrides
    "BLT, entropy patches": dict(model="blt"),
    "BLT, space patches": dict(model="space"),
    "BLT, static patches of 4": dict(model="static", patcher={"patch_size": 4}),
    "BLT, static patches of 6": dict(model="static", patcher={"patch_size": 6}),
    "byte transformer": dict(model="byte"),
    "BPE transformer": dict(model="bpe"),
}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--preset", default="tiny")
    p.add_argument("--train-flops", type=float, default=4e12)
    p.add_argument("--seq-len", type=int, default=512)
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--device", default="auto")
    p.add_argument("--out", default=None, help="default figures/<preset>/flop_matched_<budget>")
    a = p.parse_args(argv)
    out = Path(a.out or f"figures/{a.preset}/flop_matched_{a.train_flops:.0e}".replace("+", ""))
    out.mkdir(parents=True, exist_ok=True)
    results, t0 = {}, time.time()
    for name, over in RUNS.items():
        cfg = TrainConfig(preset=a.preset, max_steps=None, train_flops=a.train_flops, seq_len=a.seq_len,
                          batch_size=a.batch_size, device=a.device, **over)
        print(f"== {name}", file=sys.stderr)
        results[name] = train(cfg)
    (out / "results.json").write_text(json.dumps(results, indent=1))
    rows = ["| model | params (w/o hash) | inference FLOPs/byte | bytes/patch | steps | bytes seen | train bpb | val bpb |",
            "|---|---|---|---|---|---|---|---|"]
    for name, r in sorted(results.items(), key=lambda kv: kv[1]["val_bpb"]):
        rows.append(f"| {name} | {r['params_without_hash'] / 1e6:.2f}M | {r['flops_per_byte']:.3g} | {r['bytes_per_patch']:.2f} | "
                    f"{r['steps']} | {r['bytes_seen'] / 1e6:.2f}M | {r['final_train_bpb']:.3f} | **{r['val_bpb']:.3f}** |")
    cmd = "python scripts/flop_matched.py " + " ".join(argv if argv is not None else sys.argv[1:])
    text = (f"# FLOP-matched comparison, preset `{a.preset}`\n\nEvery model trained to {a.train_flops:.3g} training FLOPs "
            f"(3 × forward FLOPs per byte × bytes seen) on the preset's slice of the English train split; rows of "
            f"{a.seq_len} bytes, global batch {a.batch_size}. Validation bpb counts data bytes only (BOS/EOS excluded), "
            f"sliding windows with half-row stride. Sorted by validation bpb.\n\n" + "\n".join(rows) +
            f"\n\nCommand: `{cmd.strip()}`  \nWall time: {time.time() - t0:.0f} s on {platform.processor() or platform.machine()}, "
            f"{torch.get_num_threads()} threads, torch {torch.__version__}.\n")
    (out / "table.md").write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
