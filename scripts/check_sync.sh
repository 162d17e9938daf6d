#!/usr/bin/env bash
# Fail when the notebooks are not clean or the exported library is out of sync with them.
# It runs nbdev-clean and nbdev-export and compares the tree before and after (as nbdev's own CI does).
set -euo pipefail
BIN=${1:-.venv/bin}
if ! git rev-parse --is-inside-work-tree >/dev/null 2>&1; then
  echo "[check-sync] not a git checkout: skipped"; exit 0
fi
snap() { git status --porcelain --untracked-files=all -- nbs blt_repro | sort; git diff -- nbs blt_repro | md5sum; }
before=$(snap)
"$BIN/nbdev-clean" >/dev/null
"$BIN/nbdev-export" >/dev/null
after=$(snap)
if [ "$before" != "$after" ]; then
  echo "[check-sync] FAILED: nbdev-clean / nbdev-export changed files (notebooks not clean or library out of sync)."
  echo "             They have now been fixed in your working tree; review and commit them:"
  diff <(echo "$before") <(echo "$after") | grep '^[<>] ' | grep -v '^[<>] [0-9a-f]\{32\}' || true
  exit 1
fi
tmp=$(mktemp -d)
"$BIN/jupyter" nbconvert --to markdown nbs/index.ipynb --output-dir "$tmp" --output README --log-level WARN
if ! cmp -s "$tmp/README.md" README.md; then
  echo "[check-sync] FAILED: README.md is not the rendering of nbs/index.ipynb: run 'make readme' and commit it."
  exit 1
fi
echo "[check-sync] ok: notebooks clean, blt_repro/ in sync, README.md up to date"
