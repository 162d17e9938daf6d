"""The committed results: every claims file agrees with its intervals, and the README's summary quotes it faithfully."""
import json
import math
import re

import pytest

from blt_repro.core import project_root
from blt_repro.stats import VERDICTS, claims_file, verdict

ROOT = project_root()
CLAIMS = sorted((ROOT / "figures").glob("*/claims.json"))


@pytest.mark.parametrize("path", CLAIMS, ids=lambda p: p.parent.name)
def test_every_verdict_follows_its_interval(path):
    "holds / reversed only when the whole 95 % interval lies on one side of 0; within noise when it contains 0."
    data = json.loads(path.read_text())
    assert data["preset"] == path.parent.name and data["claims"], path
    claims_file(data["preset"], data["commit"], data["claims"])              # raises on a hand-edited verdict
    for c in data["claims"]:
        assert c["verdict"] in VERDICTS and c["supports_if"] in ("negative", "positive") and c["paper"], c["id"]
        if c["ours"] is None or any(math.isnan(x) for x in c["ours"]["ci95"]): continue
        lo, hi = c["ours"]["ci95"]
        assert lo <= c["ours"]["mean"] <= hi, c["id"]                         # the mean lies in its interval
        assert verdict((lo, hi), c["supports_if"]) == c["verdict"], c["id"]


@pytest.mark.parametrize("path", CLAIMS, ids=lambda p: p.parent.name)
def test_results_readme_is_generated_from_the_claims(path):
    "figures/<preset>/README.md shows every claim of claims.json with its verdict."
    readme = (path.parent / "README.md").read_text()
    for c in json.loads(path.read_text())["claims"]:
        assert f"**{c['verdict']}**" in readme and c["claim"].replace("|", "\\|") in readme, c["id"]


def test_front_page_quotes_the_claims_files():
    "Every claim id the README's 'What reproduces' table names has the verdict its claims file gives."
    readme = (ROOT / "README.md").read_text()
    quoted = re.findall(r"`([a-z0-9+.-]+)` \((tiny|small)\): \*\*([a-z ]+)\*\*", readme)
    assert quoted or not CLAIMS, "the README's 'What reproduces' table quotes no claim"
    by_preset = {p.parent.name: {c["id"]: c["verdict"] for c in json.loads(p.read_text())["claims"]} for p in CLAIMS}
    for cid, preset, v in quoted:
        assert cid in by_preset.get(preset, {}), f"README cites {cid} ({preset}), absent from figures/{preset}/claims.json"
        assert by_preset[preset][cid] == v, f"README says {cid} ({preset}) {v!r}; claims.json says {by_preset[preset][cid]!r}"
