#!/usr/bin/env python3
"""The shape of the house, checked: no source file over 1,000 lines (tests aside), no example over
300 (the requests catalogue aside), no two files of a crate importing each other, and no relative
link in the docs to a file the repository lacks. Prints each finding; exits 1 if there is one."""

import os
import re
import subprocess
import sys

ROOT = os.path.abspath(sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(__file__), ".."))
CRATES = [".", "graph-chat-webhook", "graph-sim", "graph-chat-app"]
MAX_SOURCE_LINES = 1000
MAX_EXAMPLE_LINES = 300
EXAMPLES_EXEMPT = {"examples/requests.rs"}  # the catalogue of every documented request

findings = []


def tracked(suffix):
    out = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True, check=True)
    return [f for f in out.stdout.splitlines() if f.endswith(suffix)]


def lines(path):
    with open(os.path.join(ROOT, path), encoding="utf-8") as f:
        return f.read().splitlines()


def is_test(path):
    parts = path.split("/")
    return "tests" in parts or "benches" in parts or parts[0] == "fuzz"


# 1. Room sizes.
for path in tracked(".rs"):
    n = len(lines(path))
    if "/examples/" in "/" + path:
        if path not in EXAMPLES_EXEMPT and n > MAX_EXAMPLE_LINES:
            findings.append(f"{path}: an example of {n} lines (at most {MAX_EXAMPLE_LINES})")
    elif not is_test(path) and n > MAX_SOURCE_LINES:
        findings.append(f"{path}: {n} lines (at most {MAX_SOURCE_LINES})")


# 2. Import circles between the files of each crate's library.
DEF = r"(?:pub(?:\([^)]*\))?\s+)?(?:struct|enum|fn|trait|type|const|static|mod|union|async fn)\s+{}\b|macro_rules!\s*{}\b"


def module_files(crate):
    src = os.path.join(ROOT, crate, "src")
    files = {}
    for dirpath, _, names in os.walk(src):
        for name in names:
            if not name.endswith(".rs"):
                continue
            rel = os.path.relpath(os.path.join(dirpath, name), src)
            parts = rel[:-3].split(os.sep)
            if parts[-1] in ("mod", "lib", "main"):
                parts = parts[:-1]
            files[tuple(parts)] = os.path.relpath(os.path.join(dirpath, name), ROOT)
    return files


def code_of(path):
    text = "\n".join(lines(path))
    text = re.sub(r"//[^\n]*", "", text)
    # Unit tests inside a file may reach anywhere.
    cut = re.search(r"#\[cfg\(test\)\]\s*mod\s+tests", text)
    return text[: cut.start()] if cut else text


def expand_uses(code):
    """Every `crate::a::b` path a file names, with `use` groups (`crate::a::{b, c::D}`) expanded."""
    paths = []
    # Re-exports (`pub use child::Item;`) make a module out of its parts: not an import.
    code = re.sub(r"\bpub(?:\([^)]*\))?\s+use\s+[^;]+;", "", code)
    for m in re.finditer(r"\buse\s+([^;]+);", code):
        stack = [m.group(1).replace(" ", "").replace("\n", "")]
        while stack:
            s = stack.pop()
            g = re.match(r"^(.*?)\{(.*)\}$", s)
            if g:
                prefix, inner = g.groups()
                depth, part, parts = 0, "", []
                for ch in inner:
                    if ch == "," and depth == 0:
                        parts.append(part)
                        part = ""
                        continue
                    depth += ch == "{"
                    depth -= ch == "}"
                    part += ch
                parts.append(part)
                stack.extend(prefix + p for p in parts if p)
            else:
                paths.append(re.sub(r"as\w+$", "", s))
    rest = re.sub(r"\buse\s+[^;]+;", "", code)
    paths += re.findall(r"\bcrate(?:::\w+)+", rest)
    # A file's own submodules, named without `self::` (`keys::load(..)`, `use keys::Key;`).
    for child in re.findall(r"^\s*(?:pub(?:\([^)]*\))?\s+)?mod\s+(\w+)\s*;", code, re.M):
        paths += ["self::" + p for p in re.findall(r"(?<![:\w])(" + child + r"(?:::\w+)+)", code)]
    return paths


for crate in CRATES:
    files = module_files(crate)
    edges = set()
    for mod, path in files.items():
        code = code_of(path)
        for p in expand_uses(code):
            segs = p.split("::")
            if segs[0] == "crate":
                segs = segs[1:]
            elif segs[0] in ("super", "self"):
                base = list(mod)
                while segs and segs[0] in ("super", "self"):
                    if segs[0] == "super":
                        # a file `a/b.rs` is module a::b; its super is a
                        base = base[:-1]
                    segs = segs[1:]
                segs = base + segs
            else:
                continue
            # The deepest module file the path names, and the item it names there.
            for cut in range(len(segs), -1, -1):
                target = tuple(segs[:cut])
                if target in files:
                    break
            else:
                continue
            if target == mod:
                continue
            item = segs[cut] if cut < len(segs) else None
            if item is not None and item not in ("self", "*"):
                if not re.search(DEF.format(re.escape(item), re.escape(item)), code_of(files[target])):
                    continue  # a re-export: the item lives further down
            edges.add((mod, target))
    # Any circle, however long: the strongly connected components of more than one file.
    graph = {}
    for a, b in edges:
        graph.setdefault(a, set()).add(b)
    index, low, on, stack, out = {}, {}, set(), [], []

    def visit(v):
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in graph.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                out.append(sorted(files[m] for m in component))

    for v in sorted(files):
        if v not in index:
            visit(v)
    for component in out:
        findings.append("import circle: " + " -> ".join(component))


# 3. Relative links in the docs.
for path in tracked(".md"):
    if path.startswith("CHANGELOG") or "/fixtures/" in path:
        continue
    base = os.path.dirname(path)
    for i, line in enumerate(lines(path), 1):
        for target in re.findall(r"\]\(([^)\s]+)\)", line):
            if re.match(r"^[a-z]+:", target) or target.startswith("#"):
                continue
            file = target.split("#")[0]
            if file and not os.path.exists(os.path.join(ROOT, base, file)):
                findings.append(f"{path}:{i}: links {target}, which the repository lacks")
        for name in re.findall(r"\b(DESIGN\.md|FACTS\.md|\.\./shared/)", line):
            findings.append(f"{path}:{i}: cites {name}, which is not in the repository")

for f in findings:
    print(f)
print(f"house: {len(findings)} finding(s)")
sys.exit(1 if findings else 0)
