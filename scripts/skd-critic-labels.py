#!/usr/bin/env python3
"""Writes the Symbolic Knowledge Distillation recipe's labelled critic set from its events.

Each event of recipes/symbolic-knowledge-distillation/data/events.jsonl carries one inference
per ATOMIC relation, written by hand for this project: those triples are labelled `accept`.
Each (event, relation) also gets one `reject` triple of the kinds of error the paper's
annotators rejected, in turn: an inference of another relation of the same event (the wrong
relation), the same relation's inference of an unrelated event (implausible), the event itself
repeated (no inference), and word salad (ungrammatical). The first 24 events make the training
file, the last 6 the development file the critic is scored on. Deterministic: run it again
after editing the events.
"""
import json
import pathlib

data = pathlib.Path(__file__).resolve().parent.parent / "recipes/symbolic-knowledge-distillation/data"
events = [json.loads(line) for line in (data / "events.jsonl").read_text().splitlines() if line.strip()]
relations = [json.loads(line) for line in (data / "relations.jsonl").read_text().splitlines() if line.strip()]
salad = ["blue the quickly of", "banana seven window", "the the and", "very PersonY sky", "upon under it", "green running table", "of to from"]


def text(event, relation, tail):
    return f"{event['event']}. {relation['phrase']}: {tail}"


def rows(index, event):
    out = []
    names = [relation["relation"] for relation in relations]
    for position, relation in enumerate(relations):
        name = relation["relation"]
        out.append({"text": text(event, relation, event["inferences"][name]), "label": "accept", "relation": name, "kind": "gold"})
        kind = (index + position) % 4
        if kind == 0:
            other = names[(position + 3) % len(names)]
            tail, why = event["inferences"][other], "wrong relation"
        elif kind == 1:
            other_event = events[(index + 11) % len(events)]
            tail, why = other_event["inferences"][name], "implausible"
        elif kind == 2:
            tail, why = event["event"].removeprefix("PersonX ").strip(), "repeats the event"
        else:
            tail, why = salad[(index + position) % len(salad)], "ungrammatical"
        out.append({"text": text(event, relation, tail), "label": "reject", "relation": name, "kind": why})
    return out


split = 24
for name, chosen in [("critic_train.jsonl", events[:split]), ("critic_dev.jsonl", events[split:])]:
    offset = 0 if name == "critic_train.jsonl" else split
    lines = [json.dumps(row) for index, event in enumerate(chosen) for row in rows(index + offset, event)]
    (data / name).write_text("\n".join(lines) + "\n")
    print(name, len(lines))
