"""Nothing committed for users carries a path of the machine it was made on: results files, READMEs and notebook
outputs are read on other machines (a home or work folder there means a leak, and a dead reference)."""
import json
import re
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# absolute paths under the usual per-machine roots; /tmp and /var would be temporary folders of one run
MACHINE_PATH = re.compile(r"(?<![\w.])/(?:home|root|work|Users|tmp|var/folders)/[\w.-]+")


def tracked(*patterns: str) -> list[Path]:
    "Files tracked by git that match the patterns (what a clone gets)."
    out = subprocess.run(["git", "ls-files", *patterns], cwd=ROOT, capture_output=True, text=True, check=True).stdout
    return [ROOT / p for p in out.split()]


def notebook_outputs(path: Path) -> str:
    "The text of every output of a notebook (sources may name paths on purpose, e.g. in examples)."
    nb = json.loads(path.read_text())
    parts = []
    for cell in nb["cells"]:
        for o in cell.get("outputs", []):
            parts.append("".join(o.get("text", "")))
            parts += ["".join(v) for k, v in o.get("data", {}).items() if k.startswith("text/")]
    return "\n".join(parts)


def test_pattern_finds_what_it_should():
    assert MACHINE_PATH.search('"out_dir": "/work/main/.cache/runs/x"')
    assert MACHINE_PATH.search("wrote 4 files to /tmp/robustness_7z5krq4d")
    assert not MACHINE_PATH.search("figures/tiny/README.md and https://example.org/home/page")


def test_results_have_no_machine_paths():
    files = tracked("figures/**/*.json", "figures/**/*.md", "README.md")
    assert files, "no results files found: is this a git checkout?"
    bad = {str(f.relative_to(ROOT)): m.group() for f in files if (m := MACHINE_PATH.search(f.read_text()))}
    assert not bad, f"machine paths in committed results: {bad}"


def test_notebook_outputs_have_no_machine_paths():
    bad = {str(f.relative_to(ROOT)): m.group() for f in tracked("nbs/*.ipynb")
           if (m := MACHINE_PATH.search(notebook_outputs(f)))}
    assert not bad, f"machine paths in committed notebook outputs: {bad}"
