#!/usr/bin/env python3
"""check_layers.py — the library's dependencies go one way.

Each directory of src/ is a layer with a rank; a file may include headers of
its own directory and of lower ranks only (graft.h, the public header, is
below everything).  Independently of the ranks, no include cycle may exist
between modules (a module = X.c with its X.h).  Prints every violation and
exits 1 when there is one; `make check-layers` runs it, and make test too.

Usage: scripts/check_layers.py [SRC_DIR]   (default: src)
"""
import os
import re
import sys

# Lower ranks first.  Directories of the same rank must not include each other.
RANKS = {
    "core": 0,      # error, log, allocation, RNG, limits, the atomic file writer
    "ops": 1,       # the op table: each op's shape rule, reference forward/backward
    "data": 1,      # datasets, images, the batcher
    "hub": 1,       # downloads, the registry of known files, digests
    "graph": 2,     # the model: nodes, parameters, shapes
    "backend": 3,   # oneDNN fast paths for a model's nodes
    "exec": 4,      # running a model: the executor (and its execution context)
    "arch": 5,      # architectures built from code or a darknet cfg
    "format": 6,    # weights and model files, bound to a model
    "dist": 7,      # MPI collectives
    "train": 8,     # trainer, optimizers, fit, the features cache
    "probe": 9,     # the linear probe
    "report": 9,    # the run record, the HTML report, TensorBoard
    "cli": 10,      # the graft command
}

INCLUDE = re.compile(r'^\s*#\s*include\s+"([^"]+)"', re.M)


def main():
    src = sys.argv[1] if len(sys.argv) > 1 else "src"
    files = []
    for root, _, names in os.walk(src):
        for n in names:
            if n.endswith((".c", ".h")):
                files.append(os.path.relpath(os.path.join(root, n), src))
    problems = []
    edges = {}
    for f in sorted(files):
        d = f.split("/")[0] if "/" in f else ""
        if d not in RANKS:
            problems.append(f"{src}/{f}: in no layer (put it in one of {', '.join(RANKS)})")
            continue
        mod = os.path.splitext(f)[0]
        with open(os.path.join(src, f), encoding="utf-8", errors="replace") as fh:
            text = fh.read()
        for inc in INCLUDE.findall(text):
            if inc == "graft.h" or inc.endswith(".pb-c.h"):
                continue
            target = inc if "/" in inc else f"{d}/{inc}"
            if not os.path.exists(os.path.join(src, target)):
                continue  # not one of ours (a system header in quotes)
            td = target.split("/")[0]
            if td != d and (td not in RANKS or RANKS[td] >= RANKS[d]):
                problems.append(f"{src}/{f}: includes {inc}: layer '{d}' (rank {RANKS[d]}) may not "
                                f"depend on '{td}' (rank {RANKS.get(td, '?')})")
            tmod = os.path.splitext(target)[0]
            if tmod != mod:
                edges.setdefault(mod, set()).add(tmod)
    # include cycles between modules (Tarjan's strongly connected components)
    index, low, stack, on, sccs = {}, {}, [], set(), []
    counter = [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in sorted(edges.get(v, ())):
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
                sccs.append(sorted(comp))

    sys.setrecursionlimit(10000)
    for v in sorted(edges):
        if v not in index:
            visit(v)
    for comp in sccs:
        problems.append("include cycle between modules: " + " <-> ".join(comp))
    for p in problems:
        print(p)
    if problems:
        print(f"check_layers: {len(problems)} problem(s)")
        return 1
    print(f"check_layers: {len(files)} files, dependencies one way, no include cycle")
    return 0


if __name__ == "__main__":
    sys.exit(main())
