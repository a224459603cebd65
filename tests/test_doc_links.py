"""Every relative link of README.md, BENCHMARKS.md and docs/*.md names a file that exists, and
every #anchor a heading of the page it points to (GitHub's heading ids)."""
import glob
import os
import re

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)\)")


def _pages():
    return ["README.md", "BENCHMARKS.md"] + sorted(os.path.relpath(p, REPO) for p in glob.glob(os.path.join(REPO, "docs", "*.md")))


def _prose(path, spans=False):
    """The page without its code blocks (and code spans: a link there is code, not a link)."""
    with open(path) as f:
        text = re.sub(r"^```.*?^```", "", f.read(), flags=re.S | re.M)
    return text if spans else re.sub(r"`[^`\n]*`", "", text)


def anchors(path):
    """GitHub's ids of a page's headings: lower case, punctuation dropped, spaces to hyphens,
    a repeated id numbered -1, -2, ..."""
    seen, ids = {}, set()
    for heading in re.findall(r"^#+ (.*)$", _prose(path, spans=True), re.M):
        slug = re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")
        ids.add(f"{slug}-{seen[slug]}" if slug in seen else slug)
        seen[slug] = seen.get(slug, 0) + 1
    return ids


def test_relative_links_and_anchors_exist():
    broken = []
    for page in _pages():
        here = os.path.join(REPO, page)
        for target in LINK.findall(_prose(here)):
            if re.match(r"[a-z]+:", target):
                continue  # http(s), mailto: not checked (no network)
            path, _, anchor = target.partition("#")
            full = os.path.normpath(os.path.join(os.path.dirname(here), path)) if path else here
            if not os.path.exists(full):
                broken.append(f"{page}: {target} (no such file)")
            elif anchor and full.endswith(".md") and anchor not in anchors(full):
                broken.append(f"{page}: {target} (no such heading)")
    assert not broken, "\n".join(broken)


def test_anchor_ids_are_githubs():
    assert "export-sizes-and-cpu-latency-toolsbench_exportpy" in anchors(os.path.join(REPO, "BENCHMARKS.md"))
    assert "quick-start-pruning-callbacks-in-your-own-modelfit" in anchors(os.path.join(REPO, "README.md"))
