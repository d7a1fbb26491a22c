"""Turns the JSON reports of bench/engine.sh (several rounds of a baseline and a fast configuration of
`squeeze bench`) into a Markdown section for docs/benchmarks.md: prefill and decode tokens/s per batch size,
the median over rounds of each run's median, the range over rounds, and the fast/baseline ratio."""
import argparse
import datetime
import json
import statistics
import sys


def load(paths):
    """{(batch, metric): [per-run median, ...]} and the settings of the runs (all alike)."""
    values, settings, model = {}, None, None
    for path in paths:
        try:
            rep = json.load(open(path))
            variant = rep["variants"][0]
            for res in variant["results"]:
                for metric in ("prefill_tok_s", "decode_tok_s"):
                    values.setdefault((res["n_seqs"], metric), []).append(res[metric]["median"])
        except (OSError, ValueError, KeyError, IndexError, TypeError) as e:
            sys.exit(f"engine_table.py: {path}: not a squeeze bench report ({e})")
        settings, model = rep["settings"], variant["model"]
    return values, settings, model


def cell(runs):
    med = statistics.median(runs)
    return f"{med:,.0f} ({min(runs):,.0f}–{max(runs):,.0f})" if len(runs) > 1 else f"{med:,.0f}"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--baseline", nargs="+", required=True)
    ap.add_argument("--fast", nargs="+", required=True)
    ap.add_argument("--cpu", default="unknown CPU")
    ap.add_argument("--cores", type=int, default=0)
    ap.add_argument("--commit", default="unknown")
    ap.add_argument("--command", required=True)
    args = ap.parse_args()
    base, bs, model = load(args.baseline)
    fast, fs, _ = load(args.fast)
    if sorted(base) != sorted(fast):
        sys.exit("engine_table.py: the baseline and fast runs measured different batch sizes")
    base_name = f"{bs['kernels']}, {bs['n_threads']} thread{'s' if bs['n_threads'] > 1 else ''}"
    fast_name = f"{fs['kernels']}, {fs['n_threads']} thread{'s' if fs['n_threads'] > 1 else ''}"
    print(f"## Engine speed: {model}\n")
    cores = f" ({args.cores} online cores)" if args.cores else ""
    print(f"Measured {datetime.date.today().isoformat()} on {args.cpu}{cores}, commit {args.commit}, with\n")
    print(f"    {args.command}\n")
    print(f"{bs['n_prompt']} prompt tokens and {bs['n_gen']} decode steps per sequence (random prompt ids), "
          f"{len(args.baseline)} alternating rounds of {bs['n_reps']} repetitions after {bs['n_warmup']} warm-up; "
          "each figure is the median over rounds of each run's median tokens/s, with the range over rounds. "
          "Decode tokens/s count every sequence's tokens.\n")
    print(f"| metric | {base_name} | {fast_name} | speed-up |")
    print("|---|---:|---:|---:|")
    for batch, metric in sorted(base, key=lambda k: (k[0], k[1] != "prefill_tok_s")):
        name = ("prefill" if metric == "prefill_tok_s" else "decode") + f" tokens/s, batch {batch}"
        ratio = statistics.median(fast[(batch, metric)]) / statistics.median(base[(batch, metric)])
        shown = f"{ratio:.1f}" if ratio >= 1 else f"{ratio:.2f}"
        print(f"| {name} | {cell(base[(batch, metric)])} | {cell(fast[(batch, metric)])} | {shown}x |")


main()
