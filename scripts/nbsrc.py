#!/usr/bin/env python
"""Maintainer tool: build a notebook from a percent-format script, optionally executing it.

    python scripts/nbsrc.py SRC.py nbs/NAME.ipynb [--execute] [--skip-slow]

Cells are separated by lines `# %%` (code) and `# %% [markdown]` (markdown; each line starts with `# `).
A code cell whose first line is `# %% tags=["parameters"]` gets the papermill `parameters` tag.
Executed with the project's kernel in the notebook's folder, then cleaned with nbdev-clean. With --skip-slow, cells
flagged `#| slow` or `#| cuda` are left unexecuted (no output), as nbdev-test skips them.
"""
import argparse, hashlib, re, subprocess, sys
from pathlib import Path
import nbformat

def parse(src: str) -> nbformat.NotebookNode:
    nb = nbformat.v4.new_notebook()
    nb.metadata = {"kernelspec": {"display_name": "python3", "language": "python", "name": "python3"}}
    blocks = re.split(r"^(# %%.*)$", src, flags=re.M)
    for head, body in zip(blocks[1::2], blocks[2::2]):
        body = body.strip("\n")
        if "[markdown]" in head:
            text = "\n".join(l[2:] if l.startswith("# ") else l.lstrip("#") for l in body.splitlines())
            nb.cells.append(nbformat.v4.new_markdown_cell(text))
        else:
            cell = nbformat.v4.new_code_cell(body)
            m = re.search(r"tags=\[(.*?)\]", head)
            if m: cell.metadata["tags"] = [t.strip().strip('"\'') for t in m.group(1).split(",")]
            nb.cells.append(cell)
    seen: dict[str, int] = {}
    for c in nb.cells:                      # stable ids (hash of the source): a rebuild only changes edited cells
        h = hashlib.sha1(c.source.encode()).hexdigest()[:8]
        seen[h] = seen.get(h, 0) + 1
        c.id = h if seen[h] == 1 else f"{h}-{seen[h]}"
    return nb

def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("src"); ap.add_argument("dst"); ap.add_argument("--execute", action="store_true")
    ap.add_argument("--timeout", type=int, default=1800)
    ap.add_argument("--skip-slow", action="store_true", help="do not execute #| slow / #| cuda cells")
    a = ap.parse_args()
    dst = Path(a.dst)
    nb = parse(Path(a.src).read_text())
    flagged = {i: c.source for i, c in enumerate(nb.cells) if a.skip_slow and c.cell_type == "code"
               and re.search(r"^#\|\s*(slow|cuda)\b", c.source, flags=re.M)}
    for i in flagged: nb.cells[i].source = "# skipped"
    nbformat.write(nb, dst)
    if a.execute:
        subprocess.run([sys.executable, "-m", "jupyter", "nbconvert", "--to", "notebook", "--execute", "--inplace",
                        f"--ExecutePreprocessor.timeout={a.timeout}", "--ExecutePreprocessor.kernel_name=python3",
                        str(dst)], check=True)
    if flagged:
        nb = nbformat.read(dst, as_version=4)
        for i, src in flagged.items(): nb.cells[i].source, nb.cells[i].outputs = src, []
        nbformat.write(nb, dst)
    subprocess.run([str(Path(sys.executable).parent / "nbdev-clean"), "--fname", str(dst)], check=True)

if __name__ == "__main__":
    main()
