"""nbdev's processed notebooks (`_proc/*.ipynb`, written for Quarto) -> a MkDocs source tree in build/docs/.

Executes nothing: only committed outputs are published. Usage: python scripts/docs/prep.py

What Quarto would understand and MkDocs does not, rewritten here:
  * the raw-cell YAML front matter (title, description, output-file) -> a `# title` and a lead paragraph; the page
    is saved under its nbdev name (`00_core.ipynb` -> `core.ipynb`), so nbdev's `/core.html#sym` links resolve;
  * `#| output: asis` cells (every show_doc) -> markdown cells holding their markdown output, as Quarto does (the
    headings then reach the page's table of contents and the search index);
  * `#| ...` directive lines are dropped from code; `#| echo: false` hides the input, `#| output: false` the output;
  * `[source](url){target="_blank" ...}` -> an <a> tag; other `{...}` link attributes are dropped;
  * root-absolute doc links `](/core.html#x)` -> `](core.html#x)` (the site is flat);
  * tqdm progress bars (stderr) are left out.
The results READMEs (figures/<preset>/README.md with their figures) become pages under "Results".
"""
import json, re, shutil, sys, uuid
from pathlib import Path
import yaml

ROOT = Path(__file__).resolve().parents[2]             # the checkout
PROC, OUT = ROOT / "_proc", ROOT / "build" / "docs"    # nbdev's processed notebooks -> MkDocs sources
NODE = ROOT / "build" / "docs-node" / "node_modules"   # npm packages of scripts/docs/package.json
BASE = yaml.safe_load(Path(__file__).with_name("mkdocs.base.yml").read_text())   # the site's settings
REPO = BASE["repo_url"] + "/blob/main"                  # where repository files that are not pages are read
_re_dir = re.compile(r"^\s*#\|\s*([\w-]+)\s*:?\s*(.*)$")                         # a Quarto/nbdev directive line
_re_source = re.compile(r'\[([^\]]+)\]\(([^)\s]+)\)\{target="_blank"[^}]*\}')    # show_doc's source link
_re_attr = re.compile(r"(\]\([^)]*\))\{[^}]*\}")                                # any other link{...} attribute
_re_doclink = re.compile(r"\]\(/([\w-]+)\.html(#[^)]*)?\)")                      # nbdev's root-absolute doc links
_re_rel = re.compile(r"\]\((?![a-z]+:|#|/)([^)\s#]+)(#[^)\s]*)?\)")             # a relative link
_re_bar = re.compile(r"\d+/\d+ \[\d\d:\d\d|it/s\]|s/it\]")                       # a tqdm progress line


def text(c) -> str: return "".join(c["source"]) if isinstance(c["source"], list) else c["source"]
def md_cell(s: str, **meta) -> dict: return dict(cell_type="markdown", id=uuid.uuid4().hex[:8], metadata=meta, source=s)


def directives(code: str) -> tuple[dict, str]:
    "The leading `#| key: value` lines of a code cell as a dict, and the code without them."
    d, body = {}, []
    for line in code.splitlines():
        m = _re_dir.match(line)
        if m and not body: d[m.group(1)] = m.group(2).strip()
        else: body.append(line)
    return d, "\n".join(body)


def fix_md(md: str, pages: set[str]) -> str:
    "Quarto link attributes and root-absolute doc links -> what MkDocs renders."
    md = _re_source.sub(lambda m: f'<a href="{m.group(2)}" target="_blank" class="nbdev-source">{m.group(1)}</a>', md)
    md = _re_attr.sub(r"\1", md)
    def link(m):
        if m.group(1) not in pages: return m.group(0)
        return f"]({m.group(1)}.html{(m.group(2) or '').split('.')[0]})"  # `Cls.method`: nbdev documents the class
    md = _re_doclink.sub(link, md)
    md = re.sub(r"\]\(((?:\.\./)*figures/[\w-]+)/README\.md\)", r"](\1/index.html)", md)  # results pages
    md = re.sub(r"\]\(((?:\.\./)*figures/[\w/-]+)\.md\)", r"](\1.html)", md)  # other Markdown under figures/: pages too
    return _re_rel.sub(lambda m: repo_link(m, pages), md)


def repo_link(m: re.Match, pages: set[str]) -> str:
    "A relative link to a notebook -> its page; to another repository file (not published) -> the file on GitHub."
    path, anchor = m.group(1), m.group(2) or ""
    if (nb := re.fullmatch(r"(?:\.\./|nbs/)?(\d+[a-z]?_\w+)\.ipynb", path)) and (name := page_of(nb.group(1), pages)):
        return f"]({name}.html{anchor})"
    for base in (ROOT, ROOT / "nbs"):                         # index.ipynb links from the root, the others from nbs/
        f = (base / path).resolve()
        if f.is_relative_to(ROOT) and f.exists() and not f.is_relative_to(ROOT / "figures"):
            return f"]({REPO}/{f.relative_to(ROOT).as_posix()}{anchor})"
    return m.group(0)


def page_of(stem: str, pages: set[str]) -> str | None:
    "The page of notebook `stem` (03_ngram -> ngram, or the stem itself when two notebooks share a name)."
    short = re.sub(r"^\d+[a-z]?_", "", stem)
    return stem if stem in pages else short if short in pages else None


def is_bar(o: dict) -> bool:
    "A stderr stream that is only tqdm progress bars (or blank)."
    s = "".join(o.get("text", ""))
    return o.get("output_type") == "stream" and o.get("name") == "stderr" and (not s.strip() or bool(_re_bar.search(s)))


def code_cell(c: dict, pages: set[str]) -> list[dict]:
    "One processed code cell -> the cells of the page (a show_doc becomes markdown)."
    d, body = directives(text(c))
    outs = c.get("outputs", [])
    if d.get("output") == "asis":                       # show_doc: publish its markdown as the page's own
        md = "\n\n".join("".join(o["data"]["text/markdown"]) for o in outs if "text/markdown" in o.get("data", {}))
        md = re.sub(r"^---\s*\n", "", md.lstrip())       # nbdev's rule above each symbol: extra.css draws it
        return [md_cell(fix_md(md, pages), tags=["nbdev-showdoc"])] if md.strip() else []
    outs = [o for o in outs if not is_bar(o)]
    for o in outs:
        if "text/markdown" in o.get("data", {}): o["data"]["text/markdown"] = fix_md("".join(o["data"]["text/markdown"]), pages)
    meta = {k: v for k, v in c.get("metadata", {}).items() if k != "language"}
    tags = list(meta.get("tags", [])) + (["remove_input"] if d.get("echo") == "false" else []) \
        + (["remove_output"] if d.get("output") == "false" else [])
    if tags: meta["tags"] = tags
    return [dict(c, source=body, outputs=outs, metadata=meta, execution_count=c.get("execution_count"))]


def convert(nb: dict, pages: set[str]) -> tuple[dict, str]:
    "A processed notebook -> (the page's notebook, its title)."
    cells, front = [], {}
    for c in nb["cells"]:
        if c["cell_type"] == "raw" and text(c).lstrip().startswith("---"):
            front = yaml.safe_load(text(c).strip().strip("-")) or {}
        elif c["cell_type"] == "markdown" and not text(c).lstrip().startswith("<!-- WARNING: THIS FILE WAS AUTOGENERATED"):
            cells.append(md_cell(fix_md(text(c), pages), **c.get("metadata", {})))
        elif c["cell_type"] == "code":
            cells += code_cell(c, pages)
    title, desc = front.get("title", ""), front.get("description", "")
    cells.insert(0, md_cell(f"# {title}\n\n" + (f"**{desc}**\n" if desc else "")))   # markdown: its `code` renders
    return dict(nb, cells=cells), title


def page_name(nb: dict, path: Path) -> str:
    "nbdev's page name: the front matter's output-file, else the file name without its number."
    for c in nb["cells"]:
        if c["cell_type"] == "raw" and (m := re.search(r"^output-file:\s*(\S+)\.html", text(c), re.M)): return m.group(1)
    return re.sub(r"^\d+[a-zA-Z0-9]*_", "", path.stem)


def vendor(out: Path) -> None:
    "Offline assets from npm: a MathJax 2 subset and material's search-worker shim (file:// search)."
    dst, mj = out / "assets" / "vendor", NODE / "mathjax"
    if not mj.exists(): print("prep: build/docs-node has no mathjax: formulas will not render", file=sys.stderr)
    for rel in ["MathJax.js", "config/TeX-AMS_CHTML.js", "config/Safe.js", "jax/input/TeX", "jax/element",
                "jax/output/CommonHTML", "extensions", "fonts/HTML-CSS/TeX/woff", "localization/en"] if mj.exists() else []:
        (dst / "mathjax" / rel).parent.mkdir(parents=True, exist_ok=True)
        (shutil.copytree if (mj / rel).is_dir() else shutil.copy)(mj / rel, dst / "mathjax" / rel)
    if (shim := NODE / "iframe-worker" / "shim" / "index.js").exists():
        dst.mkdir(parents=True, exist_ok=True); shutil.copy(shim, dst / "iframe-worker-shim.js")


def main() -> None:
    if OUT.exists(): shutil.rmtree(OUT)
    src = OUT / "src"; src.mkdir(parents=True)
    nbs = [(f, json.loads(f.read_text())) for f in sorted(PROC.glob("*.ipynb"), key=lambda p: (p.stem != "index", p.stem != "00_overview", p.name))]
    names = {}
    for f, nb in nbs:                       # 19b_scaling and 29_scaling would both be scaling.html: the library
        n = page_name(nb, f)                # notebook (first) keeps the name, the experiment its file name
        names[f] = f.stem if n in names.values() else n
    pages, nav = set(names.values()), {"Library": [], "Experiments": []}
    for f, nb in nbs:
        page, title = convert(nb, pages)
        (src / f"{names[f]}.ipynb").write_text(json.dumps(page, indent=1, ensure_ascii=False))
        if f.stem != "index": nav["Experiments" if f.stem[:2].isdigit() and int(f.stem[:2]) >= 20 else "Library"].append({title: f"{names[f]}.ipynb"})
    results = []
    for readme in sorted((ROOT / "figures").glob("*/README.md")):       # results pages with their figures
        shutil.copytree(readme.parent, src / "figures" / readme.parent.name)
        (src / "figures" / readme.parent.name / "README.md").rename(src / "figures" / readme.parent.name / "index.md")
        results.append({f"{readme.parent.name} preset": f"figures/{readme.parent.name}/index.md"})
    vendor(src); shutil.copy(Path(__file__).with_name("extra.css"), src / "extra.css")
    cfg = dict(BASE) | {"docs_dir": "src", "site_dir": "../../_site",
            "nav": [{"Home": "index.ipynb"}, {"Library": nav["Library"]}, {"Experiments": nav["Experiments"]}, {"Results": results}]}
    (OUT / "mkdocs.yml").write_text("# generated by scripts/docs/prep.py\n" + yaml.safe_dump(cfg, sort_keys=False, allow_unicode=True))
    print(f"prep: {len(nbs)} notebooks and {len(results)} results pages -> {OUT.relative_to(ROOT)}")


if __name__ == "__main__": main()
