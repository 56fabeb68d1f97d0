"""Builds data/seeds.jsonl: AgentInstruct's two kinds of raw seeds, text documents and code files.

Text: the module documentation (`__doc__`) of CPython's standard library modules that have at
least 120 words of it, cut to 220 words (prose about a topic, not instructions or questions).
Code: HumanEval's functions (signature, docstring and canonical solution; the tests are left
out), as code files.
Rows alternate text and code, so that `--limit N` takes some of each.

Run from the recipe directory: python3 scripts/build_seeds.py [HUMANEVAL_JSONL_GZ]
(default: the workspace's shared copy, ../../../shared/data/humaneval/HumanEval.jsonl.gz)
"""
import contextlib
import gzip
import importlib
import io
import json
import sys

SKIP = {"this", "antigravity", "idlelib", "turtledemo", "tkinter", "turtle", "pdb"}


def text_seeds():
    out = []
    for name in sorted(sys.stdlib_module_names):
        if name.startswith("_") or name in SKIP:
            continue
        try:
            with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
                module = importlib.import_module(name)
        except Exception:
            continue
        doc = (module.__doc__ or "").strip()
        words = doc.split()
        if len(words) < 120:
            continue
        # Keep the lines, cut at 220 words.
        kept, count = [], 0
        for line in doc.splitlines():
            n = len(line.split())
            if count + n > 220:
                break
            kept.append(line.rstrip())
            count += n
        out.append({"seed_id": f"text-{name}", "kind": "text", "title": f"Python's {name} module",
                    "text": "\n".join(kept).strip()})
    return out


def code_seeds(path, limit=30):
    out = []
    with gzip.open(path, "rt") as f:
        for line in f:
            p = json.loads(line)
            out.append({"seed_id": "code-" + p["task_id"].replace("/", "-"), "kind": "code",
                        "title": p["entry_point"], "text": (p["prompt"] + p["canonical_solution"]).strip()})
            if len(out) == limit:
                break
    return out


def main():
    path = sys.argv[1] if len(sys.argv) > 1 else "../../../shared/data/humaneval/HumanEval.jsonl.gz"
    text, code = text_seeds(), code_seeds(path)
    rows = []
    for i in range(max(len(text), len(code))):
        if i < len(text):
            rows.append(text[i])
        if i < len(code):
            rows.append(code[i])
    with open("data/seeds.jsonl", "w") as f:
        for row in rows:
            f.write(json.dumps(row, ensure_ascii=False) + "\n")
    print(f"{len(text)} text seeds, {len(code)} code seeds")


if __name__ == "__main__":
    main()
