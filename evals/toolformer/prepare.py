"""Writes the toolformer recipe's default texts and its evaluation set from GSM8K's training answers.

GSM8K's answers mark each calculation as <<expression=result>> just before the result. Stripped
of the marks, an answer is plain text with arithmetic in it, and the marks are the gold calls.

recipes/toolformer/data/texts.jsonl       training answers 100-299, stripped (the recipe's input)
evals/toolformer/data/gsm8k.jsonl         training answers 0-49, stripped, with the gold calls:
                                          position (words before the result), expression, result

Usage: python3 evals/toolformer/prepare.py
"""
import json
import os
import re

here = os.path.dirname(os.path.abspath(__file__))
repo = os.path.dirname(os.path.dirname(here))
rows = [json.loads(line) for line in open(os.path.join(os.path.dirname(repo), "shared", "data", "gsm8k", "train_first300.jsonl"))]
MARK = re.compile(r"<<([^=<>]*)=([^<>]*)>>")


def strip(answer):
    """The answer without its final '#### N' line and without the marks, and the marks' calls."""
    body = answer.split("\n####")[0].replace("\n", " ")
    calls = []
    text = ""
    rest = body
    while True:
        match = MARK.search(rest)
        if not match:
            text += rest
            break
        text += rest[:match.start()]
        position = len(text.split())
        # A mark right after a character (as in "$<<...>>") sits inside that word.
        if text and not text[-1].isspace():
            position = max(position - 1, 0)
        calls.append({"position": position, "expression": match.group(1).strip(), "result": match.group(2).strip()})
        rest = rest[match.end():]
    return re.sub(r"\s+", " ", text).strip(), calls


with open(os.path.join(repo, "recipes", "toolformer", "data", "texts.jsonl"), "w") as out:
    for row in rows[100:300]:
        out.write(json.dumps({"text": strip(row["answer"])[0]}) + "\n")
with open(os.path.join(here, "data", "gsm8k.jsonl"), "w") as out:
    for index, row in enumerate(rows[:50]):
        text, calls = strip(row["answer"])
        out.write(json.dumps({"index": index, "text": text, "gold": calls}) + "\n")
print("ok")
