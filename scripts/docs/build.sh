#!/usr/bin/env bash
# `make docs`: the documentation site, built from the notebooks' committed outputs into _site/ (nothing is executed).
#  1. nbdev's processors -> _proc/ (show_doc rendered from the library by scripts/docs/nbdev_procs.py);
#  2. scripts/docs/prep.py -> build/docs/ (MkDocs sources: one page per notebook, the results READMEs, offline assets);
#  3. mkdocs (material theme + mkdocs-jupyter) -> _site/; 4. search made to work from file:// too.
set -euo pipefail
cd "$(dirname "$0")/../.."
BIN=${BIN:-.venv/bin}
export PYTHONPATH=$PWD${PYTHONPATH:+:$PYTHONPATH} PYTHONWARNINGS=ignore NO_MKDOCS_2_WARNING=1 MPLBACKEND=Agg
# nbdev.serve.proc_nbs, not the nbdev-proc-nbs command: the command also rewrites blt_repro/_modidx.py, writes Quarto
# files into nbs/ and tries to install Quarto
"$BIN/python" -c "from nbdev.serve import proc_nbs; proc_nbs(n_workers=1, force=True)"
"$BIN/python" scripts/docs/prep.py
"$BIN/mkdocs" build --strict -q -f build/docs/mkdocs.yml
"$BIN/python" scripts/docs/postbuild.py _site
echo "docs: _site/index.html ($(find _site -name '*.html' | wc -l) pages)"
