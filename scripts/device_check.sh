#!/usr/bin/env bash
# Every check of this project that needs a GPU, as one run sized for <= 8 minutes on one H100 / H200:
#   1. the notebooks' `#| cuda` cells (nbdev-test --flags cuda on each notebook that holds one);
#   2. `blt-repro bench forward|train|generate --device cuda` (forward and train under bf16 autocast);
#   3. a short small-preset BLT training under bf16 autocast, and its MFU: training FLOP/s (3 x forward FLOPs per
#      byte x bytes/s, between its first and last metrics lines) over the bf16 peak of an 8192^3 matmul measured on
#      the same GPU in the same run (and over the card's datasheet dense bf16 peak, when the card is known).
# Each step has its own time limit; a failed step does not stop the others. Everything goes to OUT_DIR (default
# figures/gpu/): env.json, one <step>.out / <step>.err per step, steps.txt (status and seconds), mfu.json.
#
# On a device machine that cannot reach a package index (a developer session's `device` tool), first run
# scripts/device_wheels.sh here and carry .whl: the wheels are installed into /tmp/blt_site for step 1. That tool
# brings back at most 8 files, so write OUT_DIR elsewhere and pack it:
#   scripts/device_check.sh /tmp/gpu; rc=$?; tar czf "$OUT/gpu.tgz" -C /tmp gpu; exit $rc
#   usage: [PY=python3] scripts/device_check.sh [OUT_DIR]           exit status 0 when every step passed
# DEVICE=cpu STEPS=30 runs the same steps on the CPU (a rehearsal of the script itself, not a GPU check).
set -uo pipefail
cd "$(dirname "$0")/.."
out=${1:-figures/gpu}
py=${PY:-python3}
device=${DEVICE:-cuda}
steps=${STEPS:-400}
mkdir -p "$out"; : > "$out/steps.txt"
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1 MPLBACKEND=Agg
if ! $py -c "import nbdev" 2>/dev/null && [ -d .whl ]; then   # step 1 needs nbdev; the GPU image lacks it
    $py -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target /tmp/blt_site .whl/*.whl \
        && export PYTHONPATH="$PYTHONPATH:/tmp/blt_site" PATH="/tmp/blt_site/bin:$PATH"
fi
fail=0
step() {  # step NAME SECONDS CMD...: one check under a time limit; stdout -> OUT/NAME.out, stderr -> OUT/NAME.err
    local name=$1 limit=$2 t0 rc; shift 2
    t0=$(date +%s)
    timeout "$limit" "$@" > "$out/$name.out" 2> "$out/$name.err"; rc=$?
    [ $rc -eq 0 ] || fail=1
    echo "$name: $([ $rc -eq 0 ] && echo ok || echo "FAILED (exit $rc$([ $rc -eq 124 ] && echo ', time limit'))") in $(( $(date +%s) - t0 )) s" \
        | tee -a "$out/steps.txt"
}

$py - > "$out/env.json" <<'EOF'
import json, platform, torch
gpu = torch.cuda.is_available()
print(json.dumps({"python": platform.python_version(), "torch": torch.__version__, "cuda": torch.version.cuda,
                  "gpu": torch.cuda.get_device_name(0) if gpu else None,
                  "bf16": bool(gpu and torch.cuda.is_bf16_supported())}, indent=1))
EOF
cat "$out/env.json"
if [ "$device" = cuda ]; then
    $py -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)" || { echo "no CUDA device: nothing to check"; exit 1; }
fi

# 1. the `#| cuda` notebook cells (the whole notebook runs: its cuda cells use what earlier cells built)
for nb in $(grep -l '#| cuda' nbs/*.ipynb); do step "cells_$(basename "$nb" .ipynb)" 120 nbdev-test --flags cuda "$nb"; done
# 2. the benchmarks on the GPU
step bench_forward 60 $py -m blt_repro.cli bench forward --device "$device"
step bench_train 60 $py -m blt_repro.cli bench train --device "$device"
step bench_generate 120 $py -m blt_repro.cli bench generate --device "$device"
# 3. a short small-preset training, bf16 autocast, and its MFU
rm -rf /tmp/blt_gpu_small
step train_small 120 $py -m blt_repro.cli train --preset small --device "$device" --max-steps "$steps" --out /tmp/blt_gpu_small \
    --set precision=bf16 --set log_every=20 --set eval_bytes=200000 --set check_leak=false --set progress=false
cp /tmp/blt_gpu_small/metrics.jsonl /tmp/blt_gpu_small/summary.json "$out/" 2>/dev/null
step mfu 30 $py - "$out" "$device" <<'EOF'
import json, sys, torch
from pathlib import Path
from blt_repro.bench import matmul_peak_gflops
out, device = Path(sys.argv[1]), sys.argv[2]
rows = [json.loads(l) for l in (out / "metrics.jsonl").read_text().splitlines() if l.strip()]
a, b = rows[0], rows[-1]                                     # the first logged step excludes set-up and compilation
flops_s = (b["train_flops"] - a["train_flops"]) / (b["elapsed_s"] - a["elapsed_s"])
peak = matmul_peak_gflops(8192, repeats=10, dtype=torch.bfloat16, device=device) * 1e9
name = torch.cuda.get_device_name(0) if device == "cuda" else "cpu"
sheet = {"H200": 989e12, "H100": 989e12, "A100": 312e12}    # dense bf16 tensor-core peaks from NVIDIA's datasheets
spec = next((v for k, v in sheet.items() if k in name), None)
res = {"gpu": name, "steps": [a["step"], b["step"]], "train_tflops_per_s": round(flops_s / 1e12, 2),
       "bytes_per_s": round((b["bytes_seen"] - a["bytes_seen"]) / (b["elapsed_s"] - a["elapsed_s"])),
       "matmul_peak_tflops_bf16": round(peak / 1e12, 1), "mfu_vs_measured_peak": round(flops_s / peak, 4),
       "datasheet_peak_tflops_bf16": spec and spec / 1e12, "mfu_vs_datasheet": spec and round(flops_s / spec, 4)}
(out / "mfu.json").write_text(json.dumps(res, indent=1)); print(json.dumps(res, indent=1))
EOF
echo "device check: $([ $fail -eq 0 ] && echo 'all steps passed' || echo 'some steps FAILED') (see $out/steps.txt)"
exit $fail
