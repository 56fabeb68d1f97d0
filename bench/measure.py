"""Runs a command and reports its wall time, CPU seconds and peak memory as one JSON line.

    python3 measure.py OUT.json -- COMMAND ARGS...

Peak memory is the largest sum of resident set sizes over the command's whole process tree,
sampled every 50 ms from /proc (an engine that forks workers counts them all), and never less
than the largest single process's peak that the kernel reports (`ru_maxrss`, as GNU time's %M).
CPU seconds are user + system of the command and every descendant it waited for.
"""

import json
import os
import subprocess
import sys
import threading
import time


def children_of() -> dict:
    tree = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as file:
                fields = file.read().rsplit(")", 1)[1].split()
            tree.setdefault(int(fields[1]), []).append(int(entry))
        except (OSError, IndexError, ValueError):
            continue
    return tree


def tree_rss_kb(root: int) -> int:
    tree = children_of()
    total, stack = 0, [root]
    while stack:
        pid = stack.pop()
        stack.extend(tree.get(pid, []))
        try:
            with open(f"/proc/{pid}/status") as file:
                for line in file:
                    if line.startswith("VmRSS:"):
                        total += int(line.split()[1])
                        break
        except OSError:
            continue
    return total


def main() -> int:
    out, command = sys.argv[1], sys.argv[sys.argv.index("--") + 1 :]
    started = time.monotonic()
    process = subprocess.Popen(command)
    peak = 0
    done = threading.Event()

    def sample() -> None:
        nonlocal peak
        while not done.is_set():
            peak = max(peak, tree_rss_kb(process.pid))
            done.wait(0.05)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    _, status, usage = os.wait4(process.pid, 0)
    wall = time.monotonic() - started
    done.set()
    sampler.join()
    code = os.waitstatus_to_exitcode(status)
    result = {
        "wall_s": round(wall, 3),
        "cpu_s": round(usage.ru_utime + usage.ru_stime, 3),
        "user_s": round(usage.ru_utime, 3),
        "sys_s": round(usage.ru_stime, 3),
        "peak_rss_mb": round(max(peak, usage.ru_maxrss) / 1024, 1),
        "max_process_rss_mb": round(usage.ru_maxrss / 1024, 1),
        "exit_code": code,
    }
    with open(out, "w") as file:
        json.dump(result, file)
    print(json.dumps(result), file=sys.stderr)
    return code


if __name__ == "__main__":
    sys.exit(main())
