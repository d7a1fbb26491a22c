"""Speed of two builds of squeeze measured in one run: a base build (e.g. of main) against a new one, their
runs alternating (base first in odd rounds, new first in even ones) so that both share the machine's
conditions. Prints Markdown tables of new/base ratios: the median over rounds of each run's figure, the base's
and the new build's, for

  - bench/bench_matmul (GEMV GB/s per shape and format, the 43-matrix stories15M decode and 64-token prefill
    step in tokens/s, GEMM GFLOP/s), per kernel set, scalar and the set itself, 1 and 2 threads;
  - `squeeze bench` (prefill and decode tokens/s per batch size) on each model, per kernel set.

    python3 bench/compare_builds.py BASE_BUILD NEW_BUILD [--rounds 3] [--kernels avx2,avx512]
        [--models M1,M2] [--matmul-seconds 0.1] [--matmul-sections gemv,step,gemm]
        [--bench-args "-p 128 -n 64 -b 1,8 --reps 3 --warmup 1"]

BASE_BUILD and NEW_BUILD are build folders (build/ of two checkouts, each with squeeze and
bench/bench_matmul)."""
import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile

NUM = r"([\d.]+)"
PAIR = NUM + r" \(\s*[\d.]+x?(?: decode)?\)"  # a figure and its parenthesised companion
SECTIONS = {  # bench_matmul: section heading -> (row pattern, names of the figures it holds)
    "GEMV": (re.compile(r"^(.+?)\s+(\S+)\s+" + r"\s+".join([PAIR] * 4) + r"$"),
             ["GB/s scalar 1t", "GB/s scalar 2t", "GB/s set 1t", "GB/s set 2t"]),
    "step": (re.compile(r"^(\S+)\s+[\d.]+\s+" + r"\s+".join([PAIR] * 5) + r"$"),
             ["decode tok/s scalar 1t", "decode tok/s scalar 2t", "decode tok/s set 1t", "decode tok/s set 2t",
              "prefill-64 tok/s set 2t"]),
    "GEMM": (re.compile(r"^(.+?)\s+(\S+)\s+" + r"\s+".join([NUM] * 4) + r"$"),
             ["GFLOP/s scalar 1t", "GFLOP/s scalar 2t", "GFLOP/s set 1t", "GFLOP/s set 2t"]),
}


def matmul_figures(build, seconds, sections, kernels):
    """{(section, row, figure): value} from one bench_matmul run."""
    out = subprocess.run([os.path.join(build, "bench", "bench_matmul"), str(seconds), sections, kernels],
                         check=True, capture_output=True, text=True).stdout
    figures, section = {}, None
    for line in out.splitlines():
        for name in SECTIONS:
            if line.startswith(name):
                section = name
        m = section and SECTIONS[section][0].match(line)
        if not m:
            continue
        groups = m.groups()
        n = len(SECTIONS[section][1])
        row = " ".join(g.strip() for g in groups[:-n])
        for label, value in zip(SECTIONS[section][1], groups[-n:]):
            figures[(section, row, label)] = float(value)
    if not figures:
        sys.exit(f"compare_builds.py: no figures in the output of {build}/bench/bench_matmul")
    return figures


def bench_figures(build, model, kernels, args, workdir):
    """{(model, batch, metric): median} from one `squeeze bench` run."""
    path = os.path.join(workdir, "bench.json")
    subprocess.run([os.path.join(build, "squeeze"), "bench", "-m", model, *args.split(), "--kernels", kernels,
                    "--json", path], check=True, capture_output=True)
    rep = json.load(open(path))
    return {(os.path.basename(model), res["n_seqs"], metric): res[metric]["median"]
            for res in rep["variants"][0]["results"] for metric in ("prefill_tok_s", "decode_tok_s")}


def table(title, runs):
    """Markdown: one row per figure, base and new medians over rounds and their ratio."""
    base, new = runs
    print(f"\n### {title}\n\n| figure | base | new | new/base |\n|---|---:|---:|---:|")
    ratios = []
    for key in base[0]:
        b = statistics.median(r[key] for r in base)
        n = statistics.median(r[key] for r in new)
        ratios.append(n / b)
        print(f"| {' / '.join(str(k) for k in key)} | {b:,.1f} | {n:,.1f} | {n / b:.3f} |")
    print(f"\nGeometric mean of the ratios: {statistics.geometric_mean(ratios):.3f} over {len(ratios)} figures; "
          f"lowest {min(ratios):.3f}, highest {max(ratios):.3f}.")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("base")
    ap.add_argument("new")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--kernels", default="avx2,avx512")
    ap.add_argument("--models", default="../shared/models/stories15M.bin,../shared/models/stories15M-f16.gguf,"
                    "../shared/models/stories15M-q8_0.gguf")
    ap.add_argument("--matmul-seconds", type=float, default=0.1)
    ap.add_argument("--matmul-sections", default="gemv,step,gemm", help="bench_matmul's sections; empty: none")
    ap.add_argument("--bench-args", default="-p 128 -n 64 -b 1,8 --reps 3 --warmup 1")
    args = ap.parse_args()
    sets, models = args.kernels.split(","), [m for m in args.models.split(",") if m]
    builds = [args.base, args.new]
    matmul = {s: ([], []) for s in sets}
    engine = {s: ([], []) for s in sets}
    with tempfile.TemporaryDirectory() as workdir:
        for r in range(args.rounds):
            order = [0, 1] if r % 2 == 0 else [1, 0]
            for s in sets:
                for b in order:
                    print(f"compare_builds.py: round {r + 1}/{args.rounds}, {s}, {builds[b]}", file=sys.stderr)
                    if args.matmul_sections:
                        matmul[s][b].append(matmul_figures(builds[b], args.matmul_seconds, args.matmul_sections, s))
                    figures = {}
                    for m in models:
                        figures.update(bench_figures(builds[b], m, s, args.bench_args, workdir))
                    engine[s][b].append(figures)
    print(f"Base {args.base}, new {args.new}; {args.rounds} alternating rounds; each figure the median over rounds.")
    for s in sets:
        if args.matmul_sections:
            table(f"bench_matmul {args.matmul_sections}, kernel set {s} (\"set\"; scalar alongside), "
                  f"{args.matmul_seconds} s per measurement", matmul[s])
        if models:
            table(f"squeeze bench {args.bench_args}, --kernels {s}", engine[s])


if __name__ == "__main__":
    main()
