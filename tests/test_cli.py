"""The `blt-repro` command line: help, argument errors, and the reproduce runner's failure reporting."""
import json
import subprocess
import sys

import nbformat
import pytest

from blt_repro import cli


def test_help_lists_commands():
    out = subprocess.run([sys.executable, "-m", "blt_repro.cli", "--help"], capture_output=True, text=True, check=True).stdout
    for cmd in ("reproduce", "bench", "patch"):
        assert cmd in out


def test_bad_arguments_fail_before_work():
    r = subprocess.run([sys.executable, "-m", "blt_repro.cli", "reproduce", "--preset", "huge"], capture_output=True, text=True)
    assert r.returncode == 2 and "invalid choice" in r.stderr
    with pytest.raises(ValueError, match="unknown experiment"):
        cli.reproduce("tiny", only=["no-such-experiment"])


def _project(tmp_path, cells):
    (tmp_path / "nbs").mkdir()
    (tmp_path / "pyproject.toml").write_text('[project]\nname = "blt-repro"\n')
    nb = nbformat.v4.new_notebook()
    nb.metadata = {"kernelspec": {"name": "python3", "display_name": "python3", "language": "python"}}
    params = nbformat.v4.new_code_cell('preset = "tiny"\ndevice = "cpu"')
    params.metadata["tags"] = ["parameters"]
    nb.cells = [params] + [nbformat.v4.new_code_cell(c) for c in cells]
    nbformat.write(nb, tmp_path / "nbs" / "x.ipynb")


def test_failed_notebook_is_reported_with_its_cell(tmp_path, monkeypatch):
    monkeypatch.setenv("BLT_REPRO_ROOT", str(tmp_path))
    _project(tmp_path, ["x = 1", "raise RuntimeError('boom')"])
    res = cli.run_experiment(cli.Experiment("x", "x.ipynb", "Figure 0", "test"), preset="tiny")
    assert res["status"] == "failed" and "RuntimeError" in res["error"] and "boom" in res["error"] and "cell" in res["error"]
    assert not (tmp_path / "runs" / "tiny" / "x.done.json").exists()


def test_done_experiment_is_skipped_and_table_written(tmp_path, monkeypatch):
    monkeypatch.setenv("BLT_REPRO_ROOT", str(tmp_path))
    summary = {"rows": [{"experiment": "e", "paper": "Figure 9", "files": ["a.png"], "published": "1.0",
                         "ours": "1.1", "verdict": "close"}]}
    _project(tmp_path, ["import json, pathlib",
                        "d = pathlib.Path('..') / 'figures' / preset / 'x'; d.mkdir(parents=True, exist_ok=True)",
                        f"(d / 'summary.json').write_text(json.dumps({summary!r}))"])
    exp = cli.Experiment("x", "x.ipynb", "Figure 9", "test")
    monkeypatch.setattr(cli, "EXPERIMENTS", [exp])
    first = cli.reproduce("tiny")
    assert first[0]["status"] == "done"
    assert cli.reproduce("tiny")[0]["status"] == "skipped"          # finished runs are not repeated
    assert cli.reproduce("tiny", force=True)[0]["status"] == "done"  # unless --force
    readme = (tmp_path / "figures" / "tiny" / "README.md").read_text()
    assert "| e | Figure 9 | [a.png](x/a.png) | 1.0 | 1.1 | close |" in readme and "Git commit" in readme


def test_claims_json_and_readme_come_from_the_summaries(tmp_path, monkeypatch):
    "reproduce gathers every summary's claims into figures/<preset>/claims.json and puts its table in the README."
    monkeypatch.setenv("BLT_REPRO_ROOT", str(tmp_path))
    ok = {"id": "fig6-demo", "paper": "Figure 6", "claim": "A beats B", "metric": "val bpb, A minus B",
          "supports_if": "negative", "ours": {"mean": -0.05, "ci95": [-0.08, -0.02], "seeds": 3, "docs": 40},
          "published": "A ahead", "verdict": "holds", "note": ""}
    noisy = dict(ok, id="fig6-noisy", ours={"mean": -0.01, "ci95": [-0.03, 0.01], "seeds": 3, "docs": 40}, verdict="within noise")
    summary = {"rows": [], "claims": [ok, noisy]}
    _project(tmp_path, ["import json, pathlib",
                        "d = pathlib.Path('..') / 'figures' / preset / 'x'; d.mkdir(parents=True, exist_ok=True)",
                        f"(d / 'summary.json').write_text(json.dumps({summary!r}))"])
    monkeypatch.setattr(cli, "EXPERIMENTS", [cli.Experiment("x", "x.ipynb", "Figure 6", "test")])
    assert cli.reproduce("tiny")[0]["status"] == "done"
    claims = json.loads((tmp_path / "figures" / "tiny" / "claims.json").read_text())
    assert claims["preset"] == "tiny" and [c["id"] for c in claims["claims"]] == ["fig6-demo", "fig6-noisy"]
    assert claims["claims"][0]["experiment"] == "x"
    readme = (tmp_path / "figures" / "tiny" / "README.md").read_text()
    assert "-0.050 [-0.080, -0.020] (3 seeds) | A ahead | **holds** |" in readme
    assert "**within noise** |" in readme
    assert "Wall time of the experiments" in readme                        # stored in the summary by run_experiment
    bad = dict(ok, verdict="reversed")                                     # a verdict its interval denies
    (tmp_path / "figures" / "tiny" / "x" / "summary.json").write_text(json.dumps({"rows": [], "claims": [bad]}))
    with pytest.raises(ValueError, match="interval says"): cli.write_claims("tiny")


def _read(exp):
    "The notebook of a registered experiment and its cells tagged `parameters`."
    nb = nbformat.read(cli.project_root() / "nbs" / exp.notebook, as_version=4)
    return nb, [c for c in nb.cells if "parameters" in c.metadata.get("tags", [])]


@pytest.mark.parametrize("exp", cli.EXPERIMENTS, ids=lambda e: e.name)
def test_every_experiment_notebook_keeps_the_contract(exp):
    "Each registered notebook exists, has exactly one tagged parameters cell defaulting to tiny/cpu, and is not exported."
    nb, params = _read(exp)
    assert len(params) == 1, f"{exp.notebook}: {len(params)} parameters cells"
    src = params[0].source
    assert 'preset: str = "tiny"' in src and 'device: str = "cpu"' in src
    assert not any("default_exp" in c.source for c in nb.cells if c.cell_type == "code")
    assert nb.cells[0].cell_type == "markdown" and nb.cells[0].source.startswith("# Experiment:")


def test_experiment_names_are_unique_and_notebooks_registered_once():
    names, files = [e.name for e in cli.EXPERIMENTS], [e.notebook for e in cli.EXPERIMENTS]
    assert len(set(names)) == len(names) and len(set(files)) == len(files)
    on_disk = sorted(p.name for p in (cli.project_root() / "nbs").glob("[23][0-9]_*.ipynb"))
    assert on_disk == sorted(files), "every experiment notebook (nbs/2N_*.ipynb, nbs/3N_*.ipynb) must be registered in cli.EXPERIMENTS"


@pytest.mark.parametrize("exp", cli.EXPERIMENTS, ids=lambda e: e.name)
def test_papermill_parses_every_parameter(exp, caplog):
    "papermill's parameter inspector (used by `papermill --help-notebook`) sees each assignment, with no 'Unable to parse' warning."
    import ast
    import logging
    from papermill.translators import PythonTranslator
    cell = _read(exp)[1][0]
    assigned = [n.target.id for n in ast.parse(cell.source).body if isinstance(n, ast.AnnAssign)]
    assert assigned, f"{exp.notebook}: no annotated parameters"
    with caplog.at_level(logging.WARNING, logger="papermill"):
        found = [p.name for p in PythonTranslator.inspect(cell)]
    assert found == assigned, f"{exp.notebook}: papermill parsed {found}, the cell assigns {assigned}"
    assert "Unable to parse" not in caplog.text


def test_git_commit_is_dirty_for_code_not_for_figures(tmp_path, monkeypatch):
    "A reproduce run rewrites figures/, which must not mark the commit in its own README as dirty; edited code must."
    monkeypatch.setenv("BLT_REPRO_ROOT", str(tmp_path))
    git = lambda *a: subprocess.run(["git", "-c", "user.name=t", "-c", "user.email=t@t", *a], cwd=tmp_path, check=True, capture_output=True)
    (tmp_path / "figures").mkdir()
    (tmp_path / "figures" / "r.md").write_text("old\n")
    (tmp_path / "code.py").write_text("x = 1\n")
    git("init", "-q"); git("add", "."); git("commit", "-qm", "init")
    clean = cli.git_commit()
    assert clean != "unknown" and not clean.endswith("-dirty")
    (tmp_path / "figures" / "r.md").write_text("new\n")
    assert cli.git_commit() == clean
    (tmp_path / "code.py").write_text("x = 2\n")
    assert cli.git_commit() == clean + "-dirty"


def test_bench_generate_prints_one_json_object(monkeypatch, capsys):
    "`blt-repro bench generate` writes exactly one JSON object to stdout (here on a 64-byte prompt, 4 new bytes)."
    import functools
    from blt_repro import bench
    small = functools.partial(bench.bench_generate, prompt_lens=(64,), new_bytes=4, repeats=1, hf=False)
    monkeypatch.setattr(bench, "bench_generate", small)
    monkeypatch.setattr(bench, "generate_profile", functools.partial(bench.generate_profile, 64, 4, profiled=2))
    assert cli.main(["bench", "generate"]) == 0
    out = json.loads(capsys.readouterr().out)                   # fails on two concatenated objects
    assert out["results"][0]["prompt_bytes"] == 64 and out["results"][0]["same_bytes_as_recompute"]
    assert "hardware" in out and out["profile"]["new_bytes"] == 4 and out["profile"]["linear_per_byte"] > 10


def test_bench_train_prints_one_json_object(monkeypatch, capsys):
    "`blt-repro bench train` writes one JSON object with the profile of a step (here 2 steps of 2 x 128 bytes)."
    import functools
    from blt_repro import bench
    monkeypatch.setattr(bench, "bench_train", functools.partial(bench.bench_train, steps=2, seq_len=128, batch_size=2))
    monkeypatch.setattr(bench, "train_profile", functools.partial(bench.train_profile, 2, 128, 2))
    assert cli.main(["bench", "train"]) == 0
    out = json.loads(capsys.readouterr().out)                   # fails on two concatenated objects
    assert out["batch_size"] == 2 and out["blt_efficiency"] > 0 and "hardware" in out
    assert set(out["profile"]["ms_per_step"]) == {"matmul", "attention", "other"} and out["profile"]["efficiency_bound"] > 0


BAD_INPUT = [                                              # (argv, what the one-line error must mention)
    (["reproduce", "--only", "nonexistent"], "unknown experiment"),
    (["reproduce", "--preset", "huge"], "invalid choice"),
    (["train", "--set", "corpus=/path/to/my.txt"], "embedded corpora"),
    (["train", "--set", "lrr=1"], "lrr"),
    (["train", "--max-steps", "many"], "invalid int value"),
    (["train", "--set", "seq_len"], "KEY=VALUE"),
    (["generate", "--checkpoint", "/no/such/folder", "Hi"], "not a folder"),
    (["generate", "Hi"], "--checkpoint"),
    (["bench", "nothing"], "invalid choice"),
    (["bench", "patching", "--mib", "-1"], "--mib"),
    (["patch", "abc", "--mode", "static", "--patch-size", "0"], "patch_size"),
    (["patch", "abc", "--mode", "nope"], "invalid choice"),
    (["nope"], "invalid choice"),
]


@pytest.mark.parametrize("argv,mentions", BAD_INPUT, ids=lambda x: " ".join(x) if isinstance(x, list) else None)
def test_every_subcommand_answers_bad_input_in_one_line(argv, mentions, capsys):
    "One line `blt-repro <cmd>: error: ...` on stderr, exit code 2, no traceback, nothing on stdout."
    try: code = cli.main(argv)
    except SystemExit as e: code = e.code
    err = capsys.readouterr()
    prog = "blt-repro" if argv[0] == "nope" else f"blt-repro {argv[0]}"
    assert code == 2 and err.out == ""
    assert err.err.startswith(f"{prog}: error:") and err.err.count("\n") == 1 and mentions in err.err, err.err


def test_bad_input_through_the_console_entry_point(tmp_path):
    "The same through a real process: exit 2, one line, and the --out folder is not created."
    r = subprocess.run([sys.executable, "-m", "blt_repro.cli", "train", "--set", "corpus=my.txt", "--out", str(tmp_path / "x")],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 2 and r.stderr.startswith("blt-repro train: error:") and r.stderr.count("\n") == 1
    assert not (tmp_path / "x").exists()
