"""Builds data/tasks.jsonl: AgentBench's 60 DBBench dev tasks, our OS tasks and Self-Instruct's
seed tasks as the general instruction data that AgentTuning mixes in.

Run from the recipe directory: python3 scripts/build_tasks.py [DBBENCH_DEV_JSONL]
(default: the workspace's shared copy, ../../../shared/data/agentbench/dbbench/dev.jsonl)
"""
import json
import sys

OS_TASKS = [
    {"description": "How many lines does the file logs/app.log have? Answer with the number only.",
     "files": {"logs/app.log": "start\nload config\nconnect db\nserve\nstop\n"}, "expected_answer": "5"},
    {"description": "How many files with the extension .txt are there in the directory docs, including its subdirectories?",
     "files": {"docs/a.txt": "a", "docs/b.md": "b", "docs/sub/c.txt": "c", "docs/sub/deep/d.txt": "d", "docs/e.csv": "e"}, "expected_answer": "3"},
    {"description": "Create a directory named backup and copy every .conf file of the directory etc into it.",
     "files": {"etc/app.conf": "port=80\n", "etc/db.conf": "host=x\n", "etc/readme": "no\n"},
     "check": "test -f backup/app.conf && test -f backup/db.conf && test ! -f backup/readme"},
    {"description": "How many lines of users.csv (not counting the header line) have the role admin?",
     "files": {"users.csv": "name,role\nann,admin\nbob,user\ncid,admin\ndee,user\neve,admin\n"}, "expected_answer": "3"},
    {"description": "Which word occurs most often in words.txt (one word per line)? Answer with the word.",
     "files": {"words.txt": "pear\napple\npear\nplum\npear\napple\n"}, "expected_answer": "pear"},
    {"description": "Delete every file ending in .tmp in the directory cache, and keep the others.",
     "files": {"cache/a.tmp": "x", "cache/b.tmp": "y", "cache/keep.dat": "z"},
     "check": "test ! -f cache/a.tmp && test ! -f cache/b.tmp && test -f cache/keep.dat"},
    {"description": "Write the number of non-empty lines of notes.txt into a new file count.txt.",
     "files": {"notes.txt": "one\n\ntwo\nthree\n\n"},
     "check": "grep -q '^3$' count.txt"},
    {"description": "What is the name of the largest file (by number of lines) in the directory data? Answer with the file name only.",
     "files": {"data/small.txt": "1\n", "data/big.txt": "1\n2\n3\n4\n", "data/mid.txt": "1\n2\n"}, "expected_answer": "big.txt"},
    {"description": "Rename the file draft.md to final.md and append a line DONE to it.",
     "files": {"draft.md": "# Report\n"},
     "check": "test ! -f draft.md && grep -q '^DONE$' final.md && grep -q '^# Report$' final.md"},
    {"description": "How many distinct IP addresses appear in the first column of access.log?",
     "files": {"access.log": "10.0.0.1 GET /\n10.0.0.2 GET /a\n10.0.0.1 POST /b\n10.0.0.3 GET /\n10.0.0.2 GET /c\n"}, "expected_answer": "3"},
    {"description": "Create the file sorted.txt holding the lines of names.txt in alphabetical order.",
     "files": {"names.txt": "zoe\nadam\nmia\nbob\n"},
     "check": "head -n 1 sorted.txt | grep -q '^adam$' && tail -n 1 sorted.txt | grep -q '^zoe$' && wc -l sorted.txt | grep -q 4"},
    {"description": "How many lines in server.log contain the word ERROR?",
     "files": {"server.log": "INFO up\nERROR disk\nWARN slow\nERROR net\nINFO ok\nERROR disk\n"}, "expected_answer": "3"},
    {"description": "Move every .jpg file of the directory inbox into a new directory photos.",
     "files": {"inbox/a.jpg": "1", "inbox/b.jpg": "2", "inbox/c.pdf": "3"},
     "check": "test -f photos/a.jpg && test -f photos/b.jpg && test ! -f inbox/a.jpg && test -f inbox/c.pdf"},
    {"description": "What is the sum of the numbers in the second column of scores.csv (it has no header)?",
     "files": {"scores.csv": "ann,12\nbob,30\ncid,8\n"}, "expected_answer": "50"},
    {"description": "The directory project has a file that contains the text TODO. What is its name? Answer with the file name only.",
     "files": {"project/main.py": "print('hi')\n", "project/util.py": "# TODO: fix\n", "project/README": "docs\n"}, "expected_answer": "util.py"},
    {"description": "Create the directories out/2024/jan and out/2024/feb, each holding an empty file .keep.",
     "check": "test -f out/2024/jan/.keep && test -f out/2024/feb/.keep"},
]

def main():
    db, os_, general = [], [], []
    for i, line in enumerate(open(sys.argv[1] if len(sys.argv) > 1 else "../../../shared/data/agentbench/dbbench/dev.jsonl")):
        row = json.loads(line)
        db.append({"task_id": f"db_{i}", "kind": "db", "description": row["description"], "add_description": row.get("add_description", ""),
                    "table": row["table"], "label": row["label"], "type": row["type"]})
    for i, task in enumerate(OS_TASKS):
        os_.append({"task_id": f"os_{i}", "kind": "os", "description": task["description"], "files": task.get("files", {}),
                    "setup": task.get("setup", []), "check": task.get("check", ""), "expected_answer": task.get("expected_answer", "")})
    for i, line in enumerate(open("../self-instruct/data/seed_tasks.jsonl")):
        row = json.loads(line)
        general.append({"task_id": f"general_{i}", "kind": "general", "instruction": row["instruction"], "input": row.get("input", "")})
    # Every row has every key (empty where it does not apply), so that tools reading the first
    # rows see the whole schema.
    empty = {"task_id": "", "kind": "", "description": "", "add_description": "", "table": None, "label": [], "type": [],
             "files": {}, "setup": [], "check": "", "expected_answer": "", "instruction": "", "input": ""}
    db, os_, general = ([{**empty, **row} for row in part] for part in (db, os_, general))
    # Interleaved, so that `--limit N` runs a bit of each part.
    out = []
    for i in range(max(len(db), len(os_), len(general))):
        out.extend(part[i] for part in (db, os_, general) if i < len(part))
    with open("data/tasks.jsonl", "w") as f:
        for row in out:
            f.write(json.dumps(row, ensure_ascii=False) + "\n")
    print(len(out), "tasks")

if __name__ == "__main__":
    main()
