"""The exported library stays readable: the size budget of scripts/size_budget.py (an ast count) holds for every
module — at most 400 lines, no function over 40 lines, median function at most 10 lines, at least 0.2 comment lines
per code line."""
import importlib.util
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
spec = importlib.util.spec_from_file_location("size_budget", ROOT / "scripts" / "size_budget.py")
size_budget = importlib.util.module_from_spec(spec)
spec.loader.exec_module(size_budget)
MODULES = sorted(p for p in (ROOT / "blt_repro").glob("*.py") if p.stem not in ("_modidx", "__init__"))


@pytest.mark.parametrize("path", MODULES, ids=lambda p: p.stem)
def test_module_within_size_budget(path):
    row = size_budget.module_row(path)
    assert size_budget.over_budget(row) == [], f"{path.name}: {size_budget.over_budget(row)}"


def test_the_counter_counts():
    "The ast count itself: a known snippet gives known numbers (so a broken counter cannot pass everything)."
    text = "def f(x):\n    # why\n    return x  # trailing\n\n\ndef g():\n    pass\n"
    assert size_budget.function_lengths(size_budget.ast.parse(text)) == [3, 2]
    assert size_budget.comment_and_code_lines(text) == (2, 4)           # 2 comment lines; 4 code lines (comment-only excluded)
    assert size_budget.over_budget({"lines": 401, "max_fn": 41, "median_fn": 11, "comment_ratio": 0.1}) == [
        "lines 401 > 400", "max function 41 > 40", "median function 11 > 10", "comments/code 0.1 < 0.2"]
