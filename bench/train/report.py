"""Writes bench/TRAIN.md from a bench/train.sh work folder.

Usage: report.py WORK STAR_SECONDS
"""
import json
import os
import sys


def load_lines(path):
    return [json.loads(line) for line in open(path) if line.strip()] if os.path.exists(path) else []


def main():
    work, star_seconds = sys.argv[1], sys.argv[2]
    out = ["# The trainer benchmark (`bench/train.sh`)", ""]
    out.append(f"Written by `bench/train/report.py` from the last run of `bench/train.sh`; model {os.environ.get('MODEL', 'smollm2-135m')} (GGUF), 2 CPU cores.")
    n_train = sum(1 for _ in open(f"{work}/train.jsonl"))
    n_held = sum(1 for _ in open(f"{work}/heldout.jsonl"))
    out += ["", f"## STaR with the built-in LoRA trainer: held-out accuracy ({n_train} training problems, {n_held} held-out)", ""]
    out += ["| model | held-out accuracy | change |", "|---|---:|---:|"]
    rows = [line.split() for line in open(f"{work}/accuracy.txt")]
    base = float(rows[0][2])
    for _, round_, acc in rows:
        acc = float(acc)
        name = "base" if round_ == "0" else f"after round {round_}"
        out.append(f"| {name} | {acc:.1%} | {(acc - base) * 100:+.1f} points |")
    if os.path.exists(f"{work}/accuracy-fewshot.txt"):
        few = float(open(f"{work}/accuracy-fewshot.txt").read().strip())
        out += ["", f"The base model with STaR's own 3-shot prompt (the rounds above answer the question alone): {few:.1%}."]
    out += ["", f"STaR run, all rounds (generation and training): {star_seconds} s.", ""]
    out += ["| round | rows | steps | loss first → last | train tokens/s | trainer seconds | round seconds |", "|---:|---:|---:|---|---:|---:|---:|"]
    round_ = 1
    # A round ends when its adapter's report is written: the round's seconds are the time
    # since the previous round's report (or the run's start), generation and training.
    last = float(open(f"{work}/star-start.txt").read()) if os.path.exists(f"{work}/star-start.txt") else None
    while os.path.exists(f"{work}/star/rounds/round-{round_}/report.json"):
        path = f"{work}/star/rounds/round-{round_}/report.json"
        r = json.load(open(path))
        end = os.path.getmtime(path)
        took = f"{end - last:.0f}" if last is not None else "?"
        last = end
        out.append(f"| {round_} | {r['examples']} | {r['steps']} | {r['first_loss']:.3f} → {r['last_loss']:.3f} | {r['tokens_per_second']:.0f} | {r['seconds']:.1f} | {took} |")
        round_ += 1
    base_m = load_lines(f"{work}/margins-base.jsonl")
    spin_m = load_lines(f"{work}/margins-spin.jsonl")
    if base_m and spin_m:
        mean = lambda xs: sum(xs) / len(xs)
        b = mean([m["margin"] for m in base_m])
        s = mean([m["margin"] for m in spin_m])
        up = sum(1 for x, y in zip(base_m, spin_m) if y["margin"] > x["margin"])
        out += ["", f"## SPIN, one round (DPO): held-out margin log p(gold) − log p(base model's answer), {len(base_m)} pairs", ""]
        out += ["| model | mean margin (nats) | pairs whose margin rose |", "|---|---:|---:|"]
        out.append(f"| base | {b:.2f} | |")
        out.append(f"| after SPIN round 1 | {s:.2f} | {up} / {len(base_m)} |")
        spin_report = f"{work}/spin/rounds/round-1/report.json"
        if os.path.exists(spin_report):
            r = json.load(open(spin_report))
            out.append("")
            spin_s = open(f"{work}/spin-seconds.txt").read().strip() if os.path.exists(f"{work}/spin-seconds.txt") else "?"
            out.append(f"SPIN run (generation and training): {spin_s} s. SPIN's training: {r['examples']} pairs, {r['steps']} steps, loss {r['first_loss']:.3f} → {r['last_loss']:.3f}, {r['tokens_per_second']:.0f} tokens/s.")
    ours = load_lines(f"{work}/speed-retort.json")
    peer = load_lines(f"{work}/speed-peer.json")
    if not ours and not peer:
        print("\n".join(out))
        return
    out += ["", "## Trainer throughput, side by side (same rows, LoRA rank 8 on all 7 weights, batch 8, 10 steps, 2 threads)", ""]
    out += ["| trainer | tokens/s | seconds in steps | loss first → last |", "|---|---:|---:|---|"]
    if ours:
        r = ours[0]["report"]
        out.append(f"| retort (candle, f32, packed sequences) | {r['tokens_per_second']:.0f} | {r['train_seconds']:.1f} | {r['first_loss']:.3f} → {r['last_loss']:.3f} |")
    if peer:
        p = peer[0]
        out.append(f"| PyTorch {p['torch']} + PEFT (f32, padded batches) | {p['tokens_per_second']:.0f} | {p['train_seconds']:.1f} | {p['first_loss']:.3f} → {p['last_loss']:.3f} |")
    if ours and peer:
        out += ["", f"Ratio retort / PyTorch: **{ours[0]['report']['tokens_per_second'] / peer[0]['tokens_per_second']:.2f}×** (target ≥ 0.8×)."]
    print("\n".join(out))


if __name__ == "__main__":
    main()
