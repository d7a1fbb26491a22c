"""squeeze eval refuses malformed task files with the file and line (tests/data/eval/*), before any model
work; and an unknown task, a missing data directory and a model without a tokenizer fail clearly."""
import os
import subprocess
import sys

SHARED, BIN, WORK, DATA = (os.environ[k] for k in ("SQ_SHARED", "SQ_BIN", "SQ_WORK", "SQ_TEST_DATA"))
work = os.path.join(WORK, "py_eval_errors")
os.makedirs(work, exist_ok=True)
# stories260K alone in a folder: a model with no tokenizer, so only the task files can be at fault
MODEL = os.path.join(work, "stories260K.bin")
if not os.path.lexists(MODEL):
    os.symlink(os.path.join(SHARED, "models", "stories260K.bin"), MODEL)
failures = []

cases = [
    ("bad_json", "piqa", "bad_json/piqa.jsonl:2: malformed JSON"),
    ("missing_field", "arc_easy", "missing_field/arc_easy.jsonl:3: missing field \"choices\""),
    ("gold_range", "boolq", "gold_range/boolq.jsonl:1: gold 2 is out of range (2 choices)"),
    ("empty_choices", "openbook_qa", "empty_choices/openbook_qa.jsonl:2: field \"choices\" is empty"),
    ("not_object", "arc_challenge", "not_object/arc_challenge.jsonl:1: expected a JSON object"),
    ("hellaswag_truncated", "hellaswag", "hellaswag_truncated/hellaswag_val.txt.bz2:9: truncated item"),
    ("corrupt_bz2", "hellaswag", "corrupt_bz2/hellaswag_val.txt.bz2: corrupt or truncated bzip2"),
    ("good", "piqa,squad", "unknown task \"squad\""),
    ("no_such_dir", "piqa", "no_such_dir/piqa.jsonl: cannot open"),
    ("good", "piqa", "has no tokenizer"),
]
for folder, tasks, needle in cases:
    p = subprocess.run([BIN, "eval", "-m", MODEL, "--tasks", tasks, "--data-dir", os.path.join(DATA, "eval", folder),
                        "--no-progress"], capture_output=True, text=True)
    ok = p.returncode != 0 and needle in p.stderr
    print(("ok   " if ok else "FAIL ") + f"{folder}/{tasks}: exit {p.returncode}, {p.stderr.strip()!r}")
    if not ok:
        failures.append(folder)

p = subprocess.run([BIN, "eval", "-m", MODEL, "--limit", "0"], capture_output=True, text=True)
ok = p.returncode == 2 and "--limit" in p.stderr
print(("ok   " if ok else "FAIL ") + f"--limit 0 is a usage error: {p.stderr.strip()!r}")
failures += [] if ok else ["limit"]

print(f"{len(failures)} failure(s)")
sys.exit(1 if failures else 0)
