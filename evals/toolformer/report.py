"""Prints the toolformer evaluation's figures: the calls a run kept against GSM8K's calculator marks.

Usage: python3 evals/toolformer/report.py OUT MODEL LIMIT SECONDS
"""
import json, os, sys
out, model, limit, seconds = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
gold = {}
for line in open("evals/toolformer/data/gsm8k.jsonl"):
    row = json.loads(line)
    if row["index"] < limit:
        gold[row["text"]] = row["gold"]
def number(text):
    try:
        return float(str(text).replace(",", "").replace("$", "").rstrip("%"))
    except ValueError:
        return None
kept = [json.loads(l) for l in open(os.path.join(out, "records.jsonl"))]
at_gold = 0
right = 0
found_positions, found_expressions = set(), set()
for call in kept:
    marks = {mark["position"]: mark for mark in gold.get(call["original"], [])}
    mark = marks.get(call["position"])
    if mark is None:
        continue
    at_gold += 1
    found_positions.add((call["original"], call["position"]))
    value, expected = number(call["value"]), number(mark["result"])
    if value is not None and expected is not None and abs(value - expected) <= 1e-6 * max(1.0, abs(expected)):
        right += 1
        found_expressions.add((call["original"], call["position"]))
total = sum(len(marks) for marks in gold.values())
print(f"Toolformer (calculator) on {len(gold)} GSM8K training answers with their {total} <<expression=result>> marks removed, model {model} (GGUF, in-process), seed 0, {seconds} s:\n")
print("| calls kept | position precision | position recall | expression precision | expression recall |")
print("|---:|---:|---:|---:|---:|")
p = lambda a, b: f"{a / b:.1%}" if b else "n/a"
print(f"| {len(kept)} | {p(at_gold, len(kept))} | {p(len(found_positions), total)} | {p(right, len(kept))} | {p(len(found_expressions), total)} |")
