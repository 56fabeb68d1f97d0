"""Builds data/corpus.jsonl, the search agent's local corpus: the module documentation
(`__doc__`) of CPython's standard library modules with at least 120 words of it, the first 310
words of each, cut into passages of about 80 words at line ends (doc_id, title, passage).

Run from the recipe directory: python3 scripts/build_corpus.py
"""
import contextlib
import importlib
import io
import json
import sys

SKIP = {"this", "antigravity", "idlelib", "turtledemo", "tkinter", "turtle", "pdb"}


def main():
    rows = []
    for name in sorted(sys.stdlib_module_names):
        if name.startswith("_") or name in SKIP:
            continue
        try:
            with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
                module = importlib.import_module(name)
        except Exception:
            continue
        doc = (module.__doc__ or "").strip()
        if len(doc.split()) < 120:
            continue
        passages, current, words, total = [], [], 0, 0
        for line in doc.splitlines():
            n = len(line.split())
            if total + n > 310:
                break
            current.append(line.rstrip())
            words += n
            total += n
            if words >= 80 and not line.strip():
                passages.append("\n".join(current).strip())
                current, words = [], 0
        if "\n".join(current).strip():
            passages.append("\n".join(current).strip())
        for i, passage in enumerate(p for p in passages if p):
            rows.append({"doc_id": f"{name}-{i}", "title": f"Python's {name} module", "passage": passage})
    with open("data/corpus.jsonl", "w") as f:
        for row in rows:
            f.write(json.dumps(row, ensure_ascii=False) + "\n")
    print(f"{len(rows)} passages")


if __name__ == "__main__":
    main()
