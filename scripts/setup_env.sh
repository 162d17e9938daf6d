#!/usr/bin/env bash
# One-time set-up of the project's virtual environment (.venv), called by `make`.
#  * Needs only python3 (3.10+) and git.
#  * Never pulls a multi-GB CUDA build of torch on a machine without a GPU:
#      - torch already importable (system site-packages or an active env)  -> kept as it is;
#      - no torch, NVIDIA GPU present (nvidia-smi works)                    -> `pip install torch` (CUDA build);
#      - no torch, no GPU                                                   -> the CPU build torch==2.13.0+cpu
#        (a local wheel / find-links first; else PyTorch's CPU wheel index).
#  * Then installs the project in editable mode with its dev extra.
set -euo pipefail
PY=${PYTHON:-python3}
VENV=${VENV:-.venv}
TORCH_VERSION=${TORCH_VERSION:-2.13.0}

"$PY" -c 'import sys; assert sys.version_info >= (3, 10), "blt-repro needs Python 3.10+"'
if [ ! -x "$VENV/bin/python" ]; then
  echo "[setup] creating $VENV (system site-packages visible, so an installed torch is kept)"
  "$PY" -m venv --system-site-packages "$VENV"
fi
VPY="$VENV/bin/python"
if "$VPY" -c 'import torch' 2>/dev/null; then
  echo "[setup] torch $("$VPY" -c 'import torch; print(torch.__version__)') already installed: kept"
elif command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi >/dev/null 2>&1; then
  echo "[setup] NVIDIA GPU found: installing a CUDA build of torch"
  "$VPY" -m pip install "torch>=2.4"
else
  echo "[setup] no GPU: installing the CPU build torch==${TORCH_VERSION}+cpu"
  "$VPY" -m pip install --only-binary :all: "torch==${TORCH_VERSION}+cpu" 2>/dev/null \
    || "$VPY" -m pip install "torch==${TORCH_VERSION}+cpu" --index-url https://download.pytorch.org/whl/cpu
fi
echo "[setup] installing blt-repro[dev] (editable)"
"$VPY" -m pip install -q -e ".[dev]"
"$VPY" -m ipykernel install --sys-prefix --name python3 --display-name python3 >/dev/null
"$VPY" -c 'import torch, blt_repro; print(f"[setup] ok: torch {torch.__version__}, blt_repro {blt_repro.__version__}")'
