#!/usr/bin/env python3
"""Find import cycles between the modules of each crate in crates/.

A module is a file under src/ (src/a/mod.rs and src/a.rs are module `a`,
src/a/b.rs is `a::b`). An edge a -> b exists when a's code names
`crate::b...` (in a `use` or in a path) or `super::...` resolving to b,
following `pub use` re-exports to the module that defines the name (so
`crate::Error` from lib.rs's `pub use error::Error` is an edge to `error`).
A module's `pub use` of its own children is its public face, not an
import. Exits 1 and prints each cycle found.
"""
import os
import re
import sys

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "crates")


def modules(src):
    mods = {}
    for dirpath, _, files in os.walk(src):
        for f in files:
            if not f.endswith(".rs"):
                continue
            path = os.path.join(dirpath, f)
            rel = os.path.relpath(path, src)[:-3].split(os.sep)
            if rel[-1] == "mod":
                rel = rel[:-1]
            if rel in (["lib"], ["main"]):
                rel = []
            mods[tuple(rel)] = path
    return mods


def strip_tests(text):
    # Drop `#[cfg(test)] mod tests { ... }` blocks: test code may look anywhere.
    out, i = [], 0
    for m in re.finditer(r"#\[cfg\(test\)\]\s*mod\s+\w+\s*\{", text):
        if m.start() < i:
            continue
        out.append(text[i:m.start()])
        depth, j = 1, m.end()
        while j < len(text) and depth:
            depth += {"{": 1, "}": -1}.get(text[j], 0)
            j += 1
        i = j
    out.append(text[i:])
    return "".join(out)


def paths_in_use_tree(tree):
    """Expand `a::{b, c::d}` into ['a::b', 'a::c::d']."""
    tree = re.sub(r"\s+", "", tree)
    m = re.match(r"^(.*?)\{(.*)\}$", tree)
    if not m:
        return [tree]
    prefix, inner = m.groups()
    parts, depth, cur = [], 0, ""
    for ch in inner:
        if ch == "," and depth == 0:
            parts.append(cur)
            cur = ""
            continue
        depth += ch == "{"
        depth -= ch == "}"
        cur += ch
    parts.append(cur)
    return [p for part in parts if part for p in paths_in_use_tree(prefix + part)]


def use_statements(text):
    """Yield (is_pub, path) for every path a `use` statement names."""
    for m in re.finditer(r"(\bpub(?:\([^)]*\))?\s+)?\buse\s+([^;]+);", text):
        for path in paths_in_use_tree(m.group(2)):
            path = re.sub(r"\s+as\s+\w+$", "", path)
            yield bool(m.group(1)), path


def resolve(path, here, mods, reexports, depth=0):
    """The module a `crate::`/`super::`/`self::` path lands in, following
    `pub use` re-exports (so `crate::Error` is the module defining Error)."""
    segs = [s for s in path.split("::") if s]
    if not segs:
        return None
    if segs[0] == "crate":
        base, segs = [], segs[1:]
    elif segs[0] == "super":
        base = list(here)
        while segs and segs[0] == "super":
            base, segs = base[:-1], segs[1:]
    elif segs[0] == "self":
        base, segs = list(here), segs[1:]
    else:
        return None
    cur = list(base)
    for s in segs:
        if tuple(cur + [s]) in mods:
            cur.append(s)
            continue
        target = reexports.get((tuple(cur), s))
        if target is not None and depth < 8:
            return resolve(target, tuple(cur), mods, reexports, depth + 1) or tuple(cur)
        break
    return tuple(cur) if tuple(cur) in mods else None


def edges(mods):
    texts = {}
    for mod, path in mods.items():
        text = strip_tests(open(path, encoding="utf-8").read())
        texts[mod] = re.sub(r"//[^\n]*", "", text)
    # (module, name) -> the path it re-exports, from `pub use` lines.
    reexports = {}
    for mod, text in texts.items():
        for is_pub, path in use_statements(text):
            if not is_pub:
                continue
            leaf = path.split("::")[-1]
            if leaf in ("*", "self"):
                continue
            full = path
            if not path.startswith(("crate::", "super::", "self::")):
                # `pub use child::Name;` is relative to this module.
                full = "crate::" + "::".join(list(mod) + [path]) if path.split("::")[0] in {m[len(mod)] for m in mods if len(m) > len(mod) and m[: len(mod)] == mod} else None
            if full:
                reexports[(mod, leaf)] = full
    graph = {m: set() for m in mods}
    for mod, text in texts.items():
        refs = [p for is_pub, p in use_statements(text) if not is_pub]
        body = re.sub(r"\bpub(?:\([^)]*\))?\s+use\s+[^;]+;", "", text)
        body = re.sub(r"\buse\s+[^;]+;", "", body)
        refs += re.findall(r"\b((?:crate|super|self)(?:::\w+)+)", body)
        for r in refs:
            target = resolve(r, mod, mods, reexports)
            if target is None or target == mod:
                continue
            # A module's own children are its declarations, not imports.
            if target[: len(mod)] == mod:
                continue
            graph[mod].add(target)
    return graph


def cycles(graph):
    index, low, stack, on, out = {}, {}, [], set(), []
    counter = [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(comp)

    sys.setrecursionlimit(10000)
    for v in graph:
        if v not in index:
            visit(v)
    return out


def main():
    found = 0
    for crate in sorted(os.listdir(ROOT)):
        src = os.path.join(ROOT, crate, "src")
        if not os.path.isdir(src):
            continue
        graph = edges(modules(src))
        # Edges from a parent to its own children are declarations, not imports.
        for comp in cycles(graph):
            found += 1
            names = sorted("::".join(m) or "(root)" for m in comp)
            print(f"{crate}: cycle among {', '.join(names)}")
            for m in sorted(comp):
                deps = sorted("::".join(d) or "(root)" for d in graph[m] if d in comp)
                print(f"    {'::'.join(m) or '(root)'} -> {', '.join(deps)}")
    if found:
        sys.exit(1)
    print("no import cycles between modules")


if __name__ == "__main__":
    main()
