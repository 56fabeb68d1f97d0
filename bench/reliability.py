"""retort against a hostile server and an impatient user: the figures of issue 11.

Run by bench/reliability.sh (which builds the release binaries). Standard library only.

Scenarios:
  builtins  every built-in recipe by `--base-url URL --model M` against the mock
  faults    the quickstart at N records: clean, 10% and 30% mixed faults (resets, hangs past
            the timeout, 429/500/503 with Retry-After, malformed and truncated bodies, no
            choices, empty and length-cut answers, dripped bodies)
  kills     kill -9 at random points with a 200 ms server and 64 requests in flight; the
            answered requests the resumed run sends again, per kill
  lock      two `retort run` on one directory at once
"""
import argparse
import json
import os
import random
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Mock:
    """The retort-mock binary on a free port, logging every request to a file."""

    def __init__(self, bin_dir, work, *args):
        self.port = free_port()
        self.log = os.path.join(work, f"mock-{self.port}.log")
        self.process = subprocess.Popen(
            [os.path.join(bin_dir, "retort-mock"), "--port", str(self.port), "--log", self.log, *args],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.time() + 10
        while time.time() < deadline:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
                break
            except OSError:
                time.sleep(0.05)
        self.url = f"http://127.0.0.1:{self.port}/v1"

    def lines(self):
        if not os.path.exists(self.log):
            return []
        with open(self.log) as handle:
            return [line.rstrip("\n").split("\t") for line in handle if line.count("\t") >= 3]

    def stop(self):
        self.process.terminate()
        self.process.wait()


def quickstart(work, name, records):
    folder = os.path.join(work, name)
    shutil.rmtree(folder, ignore_errors=True)
    os.makedirs(folder)
    shutil.copy(os.path.join(REPO, "examples/quickstart/recipe.yaml"), folder)
    with open(os.path.join(folder, "topics.jsonl"), "w") as handle:
        for index in range(records):
            handle.write(json.dumps({"topic": f"topic {index}"}) + "\n")
    return folder


def run(bin_dir, folder, url, *extra, timeout=None):
    command = [os.path.join(bin_dir, "retort"), "run", "recipe.yaml", "--out", "out", "--base-url", url, "--model", "m", "--quiet", "--json", *extra]
    started = time.time()
    result = subprocess.run(command, cwd=folder, capture_output=True, text=True, timeout=timeout)
    elapsed = time.time() - started
    report = json.loads(result.stdout) if result.stdout.strip().startswith("{") else {}
    return result.returncode, elapsed, report, result.stderr


def read_jsonl(path):
    if not os.path.exists(path):
        return []
    with open(path) as handle:
        return [json.loads(line) for line in handle if line.strip()]


def damaged(folder):
    """Kept rows with an empty field, or a generated field whose answer did not end on `stop`."""
    rows = read_jsonl(os.path.join(folder, "out/data.jsonl"))
    lineage = read_jsonl(os.path.join(folder, "out/data.lineage.jsonl"))
    count = 0
    for row, line in zip(rows, lineage):
        empty = any(isinstance(value, str) and not value.strip() for value in row.values())
        cut = any(entry.get("finish_reason") not in (None, "stop") for entry in line.get("lineage", []))
        count += empty or cut
    return count, len(rows)


def scenario_builtins(bin_dir, work, out):
    mock = Mock(bin_dir, work)
    names = subprocess.run([os.path.join(bin_dir, "retort"), "recipes"], capture_output=True, text=True).stdout.split("\n")
    names = [line.split("\t")[0] for line in names if line.strip()]
    rows = []
    for name in names:
        before = len(mock.lines())
        folder = os.path.join(work, "builtins", name)
        shutil.rmtree(folder, ignore_errors=True)
        os.makedirs(folder)
        command = [os.path.join(bin_dir, "retort"), "run", name, "--out", "out", "--base-url", mock.url, "--model", "served-model", "--limit", "2", "--quiet", "--json"]
        started = time.time()
        result = subprocess.run(command, cwd=folder, capture_output=True, text=True)
        report = json.loads(result.stdout) if result.stdout.strip().startswith("{") else {}
        answered = ", ".join(report.get("answered_by", []))
        rows.append((name, result.returncode, round(time.time() - started, 1), len(mock.lines()) - before, sum(count for _, count in report.get("rows", [])), report.get("failed", "-"), answered))
    mock.stop()
    out.append("## Every built-in recipe by `--base-url`\n")
    out.append("`retort run NAME --base-url URL --model served-model --limit 2` against the mock (hash-derived answers, so many records fail the methods' own parsers and filters: the point is that every recipe runs against a server as the README says). Exit 3 means every record of some step failed there.\n")
    out.append("| recipe | exit | s | requests | rows | failed | answered by |\n|---|---|---|---|---|---|---|")
    for row in rows:
        out.append("| " + " | ".join(str(cell) for cell in row) + " |")
    ok = sum(1 for row in rows if row[1] in (0, 3))
    out.append(f"\n{ok} of {len(rows)} ran to completion (exit 0 or 3).\n")


def scenario_faults(bin_dir, work, out, records):
    out.append(f"## {records:,} records at 0%, 10% and 30% mixed faults\n")
    out.append("The quickstart (two chat requests per record) with the default settings (timeout 120 s, 6 retries, hedging on). A hang lasts an hour, past any timeout. Damaged rows: kept rows with an empty field or a generated field not ended by `stop`.\n")
    out.append("| faults | wall s | requests sent | kept | dropped | failed | damaged rows | top failure reasons |\n|---|---|---|---|---|---|---|---|")
    clean = None
    for rate in (0.0, 0.1, 0.3):
        mock = Mock(bin_dir, work, "--mixed-faults", str(rate), "--hang-s", "0", "--fault-seed", "11")
        folder = quickstart(work, f"faults-{rate}", records)
        code, elapsed, report, stderr = run(bin_dir, folder, mock.url, timeout=3600)
        mock.stop()
        if rate == 0.0:
            clean = elapsed
        bad, kept = damaged(folder)
        reasons = {}
        for step in report.get("steps", []):
            for reason, count in step.get("reasons", []):
                key = reason.split(";")[0][:60]
                reasons[key] = reasons.get(key, 0) + count
        top = "; ".join(f"{count}× {reason}" for reason, count in sorted(reasons.items(), key=lambda item: -item[1])[:2])
        requests = sum(step.get("requests", 0) for step in report.get("steps", []))
        out.append(f"| {rate:.0%} | {elapsed:.1f} | {requests} | {kept} | {report.get('dropped', '-')} | {report.get('failed', '-')} | {bad} | {top or '-'} |")
        if code not in (0, 3):
            out.append(f"\n(exit {code}: {stderr[-300:]})\n")
    out.append(f"\nTarget: within the clean run's time plus one request timeout ({clean:.1f} s + 120 s).\n")


def scenario_kills(bin_dir, work, out, kills, records):
    random.seed(7)
    mock = Mock(bin_dir, work, "--latency-ms", "200")
    resent_per_kill = []
    for kill in range(kills):
        folder = quickstart(work, f"kill-{kill}", records)
        command = [os.path.join(bin_dir, "retort"), "run", "recipe.yaml", "--out", "out", "--base-url", mock.url, "--model", "m", "--quiet", "--set", "llm.max_concurrency=64", "--set", "llm.hedge=false"]
        start_line = len(mock.lines())
        child = subprocess.Popen(command, cwd=folder, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(random.uniform(1.0, 4.0))
        # A log line is written as the answer leaves the server: every one written before the
        # kill had reached, or was reaching, retort.
        answered = {line[1] for line in mock.lines()[start_line:] if line[2] == "200"}
        child.send_signal(signal.SIGKILL)
        child.wait()
        resume_from = len(mock.lines())
        subprocess.run(command, cwd=folder, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        again = sum(1 for line in mock.lines()[resume_from:] if line[1] in answered)
        resent_per_kill.append((len(answered), again))
    mock.stop()
    sent_again = [again for _, again in resent_per_kill]
    out.append(f"## {kills} kill -9 at random points\n")
    out.append(f"The quickstart at {records:,} records, a 200 ms server, 64 requests in flight, killed between 1 and 4 s after the start, then resumed. Answered: requests whose answer had left the server before the kill (its log line was written); sent again: those the resumed run requested anyway.\n")
    out.append("| kill | answered before the kill | sent again |\n|---|---|---|")
    for index, (answered, again) in enumerate(resent_per_kill):
        out.append(f"| {index + 1} | {answered} | {again} |")
    out.append(f"\nSent again per kill: mean **{statistics.mean(sent_again):.1f}**, max **{max(sent_again)}** (target: at most 10).\n")


def scenario_lock(bin_dir, work, out):
    mock = Mock(bin_dir, work, "--latency-ms", "100")
    folder = quickstart(work, "lock", 200)
    command = [os.path.join(bin_dir, "retort"), "run", "recipe.yaml", "--out", "out", "--base-url", mock.url, "--model", "m", "--quiet", "--set", "llm.max_concurrency=8"]
    first = subprocess.Popen(command, cwd=folder, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    time.sleep(1.0)
    second = subprocess.run(command, cwd=folder, capture_output=True, text=True)
    first.wait()
    rows = len(read_jsonl(os.path.join(folder, "out/data.jsonl")))
    requests = len(mock.lines())
    mock.stop()
    message = second.stderr.strip().splitlines()[-1] if second.stderr.strip() else ""
    out.append("## Two runs on one directory\n")
    out.append(f"The second run exited {second.returncode}: `{message}`. The first completed with {rows} of 200 rows and {requests} requests (2 per record: none paid twice).\n")


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--bin", default=os.path.join(REPO, "target/release"))
    parser.add_argument("--work", default=os.path.join(REPO, "target/reliability"))
    parser.add_argument("--scenarios", default="builtins,faults,kills,lock")
    parser.add_argument("--records", type=int, default=1000)
    parser.add_argument("--kills", type=int, default=20)
    parser.add_argument("--kill-records", type=int, default=3000)
    parser.add_argument("--results", default=os.path.join(REPO, "bench/RELIABILITY.md"))
    args = parser.parse_args()
    os.makedirs(args.work, exist_ok=True)
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True, text=True).stdout.strip()
    out = [
        "# Reliability: retort against a hostile server and an impatient user\n",
        f"Written by `bench/reliability.sh` ({' '.join(sys.argv[1:]) or 'defaults'}) at commit {commit}, {time.strftime('%Y-%m-%d')}, on {os.cpu_count()} CPUs with the release binaries. The mock server (`retort-mock`) injects the faults; the same seed gives the same faults.\n",
    ]
    scenarios = args.scenarios.split(",")
    if "builtins" in scenarios:
        scenario_builtins(args.bin, args.work, out)
    if "faults" in scenarios:
        scenario_faults(args.bin, args.work, out, args.records)
    if "kills" in scenarios:
        scenario_kills(args.bin, args.work, out, args.kills, args.kill_records)
    if "lock" in scenarios:
        scenario_lock(args.bin, args.work, out)
    with open(args.results, "w") as handle:
        handle.write("\n".join(out) + "\n")
    print("\n".join(out))


if __name__ == "__main__":
    main()
