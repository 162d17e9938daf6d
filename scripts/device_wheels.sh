#!/usr/bin/env bash
# Download, here, the wheels that scripts/device_check.sh needs on a GPU machine that cannot reach a package index:
# nbdev 3 and what it imports (execnb, fastcore, IPython, ...), to run the notebooks' `#| cuda` cells there. The GPU
# image already holds torch, transformers, safetensors, numpy, matplotlib and tqdm; blt_repro itself travels as
# source (PYTHONPATH). The wheels land in .whl/ (git-ignored, ~8 MB), for Python 3.12 on x86-64 Linux by default.
#
# usage: scripts/device_wheels.sh [PYTHON_VERSION]      e.g. scripts/device_wheels.sh 3.12
set -euo pipefail
cd "$(dirname "$0")/.."
pyver=${1:-3.12}
pip=${PIP:-.venv/bin/python -m pip}
mkdir -p .whl
$pip download -q --only-binary=:all: --python-version "$pyver" --implementation cp \
    --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
    -d .whl "nbdev>=3.3,<4"
# drop what the GPU image already holds (torch, transformers and their common needs): a second copy on PYTHONPATH
# would shadow the image's own version for torch and transformers too
for have in anyio build h11 idna packaging psutil pygments pyproject_hooks pyyaml setuptools six typing_extensions wheel; do
    rm -f .whl/"$have"-[0-9]*.whl
done
echo "$(ls .whl | wc -l) wheels in .whl/ ($(du -sh .whl | cut -f1)); carry .whl with scripts/device_check.sh"
