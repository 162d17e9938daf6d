"""After `mkdocs build`, two repairs on every page of the site. Usage: python scripts/docs/postbuild.py _site

1. Anchors. mkdocs-jupyter builds a page's table of contents with Python-Markdown's slugs, while the headings get
   nbconvert's ids; the two disagree on duplicates (show_doc's `Estimate` and `estimate` both become id "estimate",
   the contents link to "estimate_1") and on headings with code or symbols in them. Repeated heading ids get the
   suffixes _1, _2, ... and a contents link whose target is missing is pointed at the heading with its text.
2. Offline search. Material's `offline` plugin loads its search-worker shim from unpkg.com; every page is pointed
   at the copy that scripts/docs/prep.py vendored, so search works with no network, from file:// too.
"""
import os, re, sys
from pathlib import Path
from bs4 import BeautifulSoup

UNPKG = "https://unpkg.com/iframe-worker/shim"


def key(text: str) -> str: return re.sub(r"[^a-z0-9]+", "", text.replace("¶", "").lower())   # text to match on


def fix_anchors(soup: BeautifulSoup) -> int:
    "Make heading ids unique and point dangling contents links at their heading; returns the number of repairs."
    seen, by_text, fixed = {}, {}, 0
    for h in soup.find_all(["h1", "h2", "h3", "h4", "h5", "h6"], id=True):
        hid = h["id"]
        if hid in seen:                                             # Python-Markdown's convention for duplicates
            seen[hid] += 1
            h["id"] = f"{hid}_{seen[hid]}"
            if (a := h.find("a", class_="anchor-link")) is not None: a["href"] = f"#{h['id']}"
            fixed += 1
        else: seen[hid] = 0
        no_code = "".join(t for t in h.find_all(string=True) if t.parent.name != "code")   # the contents drop code
        for text in (h.get_text(), no_code): by_text.setdefault(key(text), h["id"])
    ids = {t["id"] for t in soup.find_all(id=True)}
    for a in soup.select("a.md-nav__link[href^='#']"):
        if a["href"][1:] not in ids and (target := by_text.get(key(a.get_text()))):
            a["href"] = f"#{target}"; fixed += 1
    return fixed


def main(site: Path) -> None:
    shim = site / "assets" / "vendor" / "iframe-worker-shim.js"
    anchors = pages = 0
    for page in site.rglob("*.html"):
        html = page.read_text(encoding="utf-8")
        soup = BeautifulSoup(html, "html.parser")
        n = fix_anchors(soup)
        if n: html, anchors = str(soup), anchors + n
        if shim.exists() and UNPKG in html:
            html, pages = html.replace(UNPKG, os.path.relpath(shim, page.parent)), pages + 1
        page.write_text(html, encoding="utf-8")
    print(f"postbuild: {anchors} anchors repaired; {pages} pages use the vendored search-worker shim"
          + ("" if shim.exists() else " (none vendored: search from file:// needs unpkg.com)"))


if __name__ == "__main__": main(Path(sys.argv[1] if len(sys.argv) > 1 else "_site"))
