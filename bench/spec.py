#!/usr/bin/env python3
"""Speculative decoding against plain decoding, measured in the same run: for each prompt and temperature,
every repetition runs plain decoding and then each method (`squeeze run --spec ...`, same seed, same length),
so that all share the machine's conditions; the table gives medians over the repetitions of the decode speed,
tokens per target step and the speedup (a method's decode tok/s over the plain run's of the same repetition).

  bench/spec.py -m MODEL [--draft DRAFT] [--skip-layers 2,3] [--chat] [-n 128] [--reps 3] [-t 2]
                [--methods ngram,draft,...] [--prompts story,chat,grounded]

Prompts: a story opening, and an input-grounded one (a given text to retell / rewrite, where the output copies
the input and n-gram lookup can draft from it). --chat wraps them in ChatML turns (SmolLM2-Instruct, Qwen) and
adds a chat prompt (a question answered in the model's own words)."""
import argparse
import os
import re
import statistics
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
STORY = "Once upon a time, there was a little"
SOURCE = ("Tim and his sister Mia went to the park. They saw a big tree with red apples. Tim climbed the tree "
          "and picked three apples. Mia held the basket. Then a small dog ran to them and barked. Mia gave the dog "
          "an apple, and the dog wagged its tail. Tim and Mia laughed and walked home with the dog.")
GROUNDED = SOURCE + "\n\nHere is the same story again, word for word:\n\n"
CHAT_QUESTION = "Write a Python function that tells whether a number is prime, and explain how it works."
CHAT_GROUNDED = "Rewrite the following text, keeping every sentence but fixing the grammar:\n\n" + SOURCE
DECODE = re.compile(r"generated (\d+) tokens, decode (\d+\.\d) tok/s")
SPEC = re.compile(r"^speculative \w+: (\d+) target steps, (\d+\.\d\d) tokens per step")


def chatml(user):
    return f"<|im_start|>user\n{user}<|im_end|>\n<|im_start|>assistant\n"


def run(args, prompt, temp, extra):
    cmd = [args.bin, "run", "-m", args.model, "-p", prompt, "-n", str(args.n), "--temp", str(temp), "--seed", "1",
           "-t", str(args.threads), "--no-echo", *extra]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=1800)
    if r.returncode != 0:
        sys.exit(f"{' '.join(cmd)}: exit {r.returncode}: {r.stderr}")
    lines = r.stderr.strip().splitlines()
    m = DECODE.search(lines[-1])
    s = SPEC.match(lines[-2]) if len(lines) > 1 else None
    return {"tok_s": float(m[2]), "tokens": int(m[1]), "per_step": float(s[2]) if s else 1.0, "text": r.stdout}


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("-m", "--model", required=True)
    ap.add_argument("--draft")
    ap.add_argument("--skip-layers")
    ap.add_argument("--chat", action="store_true")
    ap.add_argument("-n", type=int, default=128)
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("-t", "--threads", type=int, default=2)
    ap.add_argument("--temps", default="0,0.8")
    ap.add_argument("--bin", default=os.path.join(HERE, "..", "build", "squeeze"))
    ap.add_argument("--methods", help="only the methods whose name starts with one of these (comma-separated)")
    ap.add_argument("--prompts", help="only these prompts (comma-separated: story, chat, grounded)")
    args = ap.parse_args()

    methods = [("ngram", ["--spec", "ngram"]), ("ngram k=auto", ["--spec", "ngram", "--draft-k", "auto"]),
               ("ngram tree w=3", ["--spec", "tree"])]
    if args.skip_layers:
        methods.append((f"self skip {args.skip_layers}", ["--spec", "self", "--skip-layers", args.skip_layers]))
    if args.draft:
        name = os.path.basename(args.draft)
        methods += [(f"draft {name} k=4", ["--spec", "draft", "--draft", args.draft]),
                    (f"draft {name} k=auto", ["--spec", "draft", "--draft", args.draft, "--draft-k", "auto"]),
                    (f"draft {name} tree w=2", ["--spec", "tree", "--draft", args.draft, "--tree-width", "2"])]
    if args.methods:
        methods = [m for m in methods if any(m[0].startswith(w) for w in args.methods.split(","))]
    prompts = [("story", chatml("Write a short story for children.") if args.chat else STORY)]
    if args.chat:
        prompts.append(("chat", chatml(CHAT_QUESTION)))
    prompts.append(("grounded", chatml(CHAT_GROUNDED) if args.chat else GROUNDED))
    if args.prompts:
        prompts = [p for p in prompts if p[0] in args.prompts.split(",")]
    print(f"model {args.model}, {args.n} tokens, {args.reps} repetitions, {args.threads} threads, medians; "
          f"load average {os.getloadavg()[0]:.1f}\n")
    print("| prompt | temp | method | tokens/step | decode tok/s | speedup |")
    print("| --- | --- | --- | --- | --- | --- |")
    for pname, prompt in prompts:
        for temp in [float(t) for t in args.temps.split(",")]:
            res = {name: [] for name, _ in [("plain", [])] + methods}
            for _ in range(args.reps):
                plain = run(args, prompt, temp, [])
                res["plain"].append((plain, 1.0))
                for name, flags in methods:
                    r = run(args, prompt, temp, flags)
                    if temp == 0 and r["text"] != plain["text"]:
                        sys.exit(f"{name}: greedy text differs from plain decoding")
                    res[name].append((r, r["tok_s"] / plain["tok_s"]))
            for name, rs in res.items():
                per_step = statistics.median(r["per_step"] for r, _ in rs)
                tok_s = statistics.median(r["tok_s"] for r, _ in rs)
                speedup = statistics.median(x for _, x in rs)
                print(f"| {pname} | {temp:g} | {name} | {per_step:.2f} | {tok_s:.1f} | {speedup:.2f}x |",
                      flush=True)
    print(f"\nload average at the end {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
