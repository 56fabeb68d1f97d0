"""Arithmetic word problems for the trainer benchmark, made deterministically.

Two- and three-digit numbers, one or two operations; `answer` ends in `#### N` as GSM8K's do,
so STaR's recipe reads them as it reads GSM8K. The training and held-out sets are drawn with
different seeds and share no question.

Usage: problems.py TRAIN_OUT N_TRAIN HELDOUT_OUT N_HELDOUT
"""
import json
import random
import sys

ITEMS = ["apples", "books", "marbles", "stamps", "coins", "pencils", "shells", "cards", "bottles", "tickets"]
NAMES = ["Ana", "Ben", "Chen", "Dara", "Eli", "Fatima", "Goran", "Hana", "Ivan", "Jade", "Kofi", "Lena"]


def problem(rng):
    name, item = rng.choice(NAMES), rng.choice(ITEMS)
    kind = rng.randrange(4)
    a = rng.randint(10, 999)
    b = rng.randint(10, 999)
    c = rng.randint(10, 99)
    if kind == 0:
        q = f"{name} has {a} {item} and gets {b} more. How many {item} does {name} have now?"
        steps, result = [f"{a} + {b} = {a + b}"], a + b
    elif kind == 1:
        a, b = max(a, b), min(a, b)
        q = f"{name} had {a} {item} and gave away {b}. How many {item} are left?"
        steps, result = [f"{a} - {b} = {a - b}"], a - b
    elif kind == 2:
        q = f"{name} has {a} {item}, buys {b} more and then gives {c} to a friend. How many {item} does {name} have?"
        steps, result = [f"{a} + {b} = {a + b}", f"{a + b} - {c} = {a + b - c}"], a + b - c
    else:
        x = rng.randint(2, 9)
        q = f"A box holds {c} {item}. {name} has {x} boxes and {b} loose {item}. How many {item} are there in all?"
        steps, result = [f"{x} * {c} = {x * c}", f"{x * c} + {b} = {x * c + b}"], x * c + b
    return {"question": q, "answer": "\n".join(steps) + f"\n#### {result}"}


def draw(seed, n, exclude):
    rng = random.Random(seed)
    out, seen = [], set(exclude)
    while len(out) < n:
        p = problem(rng)
        if p["question"] not in seen:
            seen.add(p["question"])
            out.append(p)
    return out


def main():
    train_out, n_train, held_out, n_held = sys.argv[1], int(sys.argv[2]), sys.argv[3], int(sys.argv[4])
    train = draw(1, n_train, [])
    held = draw(2, n_held, [p["question"] for p in train])
    for path, rows in ((train_out, train), (held_out, held)):
        with open(path, "w") as f:
            for row in rows:
                f.write(json.dumps(row) + "\n")


if __name__ == "__main__":
    main()
