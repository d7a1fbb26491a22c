"""squeeze report: the Markdown table and the SVG plot built from the hand-written reports in
tests/data/report, checked against values computed here from the same JSON (independently of the C reader):
row merging by label / model path, every cell, the points of each panel, the Pareto frontier, well-formed XML;
then malformed inputs and bad flags give clear errors naming the file."""
import json
import math
import os
import subprocess
import sys
import xml.etree.ElementTree as ET

BIN = os.environ["SQ_BIN"]
DATA = os.path.join(os.environ["SQ_TEST_DATA"], "report")
WORK = os.path.join(os.environ["SQ_WORK"], "report")
os.makedirs(WORK, exist_ok=True)
SVG_NS = "{http://www.w3.org/2000/svg}"
from checks import check, failures



def squeeze(*args):
    return subprocess.run([BIN, "report", *args], capture_output=True, text=True)


INPUTS = ["bench_bf16_only.json", "bench_f16.json", "bench_f32_vs_q8.json", "bench_q4.json", "eval_f32.json",
          "eval_q4.json", "ppl_diverged.json", "ppl_f16.json", "ppl_f32.json", "ppl_q4.json", "ppl_q4_1.json",
          "ppl_q4_pruned.json", "ppl_q8.json"]


def expected_rows(paths):
    """Merges the reports as docs/report-format.md specifies: one row per label (else model path)."""
    rows = {}

    def row(obj):
        path = obj["model"]["path"]
        key = obj.get("label") or path
        r = rows.setdefault(key, {"name": obj.get("label") or os.path.basename(path.rstrip("/"))})
        if "weight_bytes" in obj["model"]:
            r["size"] = obj["model"]["weight_bytes"] / 2**20
        return r

    for p in paths:
        rep = json.load(open(p))
        if rep["kind"] == "ppl":
            r = row(rep)
            if rep["ppl"] is not None:
                r["ppl"] = rep["ppl"]
            if rep.get("reference") and rep["reference"]["kl_mean"] is not None:
                r["kl"] = rep["reference"]["kl_mean"]
        elif rep["kind"] == "eval":
            # the tasks' mean score, recomputed here rather than read from "average"
            row(rep)["zs"] = 100 * sum(t["score"] for t in rep["tasks"]) / len(rep["tasks"])
        else:
            for v in rep["variants"]:
                r = row(v)
                smallest = min(v["results"], key=lambda x: x["n_seqs"])
                r["decode"] = smallest["decode_tok_s"]["median"]
                r["ttft"] = 1000 * smallest["ttft_s"]["median"]
    return rows


def parse_markdown(text):
    lines = [l for l in text.splitlines() if l.startswith("|")]
    header = [c.strip() for c in lines[0].strip("|").split("|")]
    table = {}
    for l in lines[2:]:
        cells = [c.strip() for c in l.strip("|").split("|")]
        table[cells[0]] = dict(zip(header[1:], cells[1:]))
    return header, table


def close(cell, value):
    """A printed cell agrees with a value to the digits it shows (at least 3 significant)."""
    if value is None:
        return cell == "—"
    if cell == "—":
        return False
    shown = float(cell.rstrip("%"))
    return math.isclose(shown, value, rel_tol=2e-3, abs_tol=0.051 if cell.endswith("%") else 0)


def pareto(points, x_lower_better, y_lower_better):
    """Points not dominated by another: O(n^2), independent of the C sweep."""
    def better_eq(a, b, lower):
        return a <= b if lower else a >= b

    front = []
    for p in points:
        dominated = any(
            q is not p and better_eq(q[0], p[0], x_lower_better) and better_eq(q[1], p[1], y_lower_better)
            and (q[0] != p[0] or q[1] != p[1]) for q in points)
        if not dominated:
            front.append(p)
    return front


paths = [os.path.join(DATA, f) for f in INPUTS]
md, svg = os.path.join(WORK, "report.md"), os.path.join(WORK, "report.svg")
r = squeeze(*paths, "-o", md, "-o", svg, "--title", "stories15M <variants> & co")
check(r.returncode == 0, f"report of {len(paths)} files exits 0 ({r.stderr.strip()})")

# ---- Markdown
text = open(md).read()
check(text.startswith("# stories15M <variants> & co\n"), "the title heads the Markdown")
header, table = parse_markdown(text)
check(header == ["variant", "size (MiB)", "ppl", "KL", "zero-shot avg", "decode tok/s", "TTFT (ms)"],
      f"table columns {header}")
rows = expected_rows(paths)
check(sorted(table) == sorted(r["name"] for r in rows.values()), f"one row per variant: {sorted(table)}")
column_of = {"size": "size (MiB)", "ppl": "ppl", "kl": "KL", "zs": "zero-shot avg", "decode": "decode tok/s",
             "ttft": "TTFT (ms)"}
for r in rows.values():
    cells = table.get(r["name"], {})
    for field, column in column_of.items():
        check(close(cells.get(column, "?"), r.get(field)),
              f"{r['name']}: {column} = {cells.get(column)} (expected {r.get(field)})")
check("medians at batch size 1" in text, "footnote names the batch size of the speed columns")
order = [l.split("|")[1].strip() for l in text.splitlines()[4:] if l.startswith("|")]
check(order[:3] == ["stories15M.gguf", "stories15M-f16.gguf", "stories15M.bin"], f"rows in order of first appearance {order[:3]}")

# without -o the table goes to stdout, identical to the file
r = squeeze(*paths, "--title", "stories15M <variants> & co")
check(r.returncode == 0 and r.stdout == text, "without -o the Markdown goes to stdout")

# ---- SVG: well-formed XML, points per panel, frontier
root = ET.parse(svg).getroot()
check(root.tag == SVG_NS + "svg", "SVG root element")
check(root.get("viewBox") is not None and int(root.get("width")) > 0 and int(root.get("height")) > 0,
      "SVG has a size and a viewBox")
titles = [t.text for t in root.iter(SVG_NS + "text") if t.get("class") == "title"]
check(titles == ["stories15M <variants> & co"], f"title text survives XML escaping: {titles}")
panels = {g.get("id"): g for g in root.iter(SVG_NS + "g") if g.get("class") == "panel"}
check(sorted(panels) == ["panel-size", "panel-speed"], f"two panels {sorted(panels)}")
for pid, xfield, x_lower in [("panel-size", "size", True), ("panel-speed", "decode", False)]:
    g = panels[pid]
    want = {r["name"]: (r[xfield], r["ppl"]) for r in rows.values() if xfield in r and "ppl" in r}
    circles = [c for c in g.iter(SVG_NS + "circle") if c.get("class") == "point"]
    got = {c.get("data-variant"): (float(c.get("cx")), float(c.get("cy"))) for c in circles}
    check(len(circles) == len(want) and set(got) == set(want), f"{pid}: {len(circles)} points for {sorted(want)}")
    labels = [t.text for t in g.iter(SVG_NS + "text") if t.get("class") == "point-label"]
    check(sorted(labels) == sorted(want), f"{pid}: every point labelled")
    # pixel positions are monotonic in the data: x grows with the metric, y falls as perplexity grows
    names = sorted(want, key=lambda n: want[n][0])
    check(all(got[a][0] < got[b][0] for a, b in zip(names, names[1:]) if want[a][0] < want[b][0]),
          f"{pid}: points ordered along x like their values")
    names = sorted(want, key=lambda n: want[n][1])
    check(all(got[a][1] > got[b][1] for a, b in zip(names, names[1:]) if want[a][1] < want[b][1]),
          f"{pid}: points ordered along y like their perplexities")
    front = pareto(list(want.values()), x_lower, True)
    polys = [p for p in g.iter(SVG_NS + "polyline") if p.get("class") == "frontier"]
    check(len(polys) == 1, f"{pid}: one frontier line")
    if polys:
        verts = [tuple(map(float, v.split(","))) for v in polys[0].get("points").split()]
        front_px = sorted(got[n] for n in want if want[n] in front)
        check(len(verts) == len(front) and all(math.isclose(a[0], b[0], abs_tol=0.01) and
                                               math.isclose(a[1], b[1], abs_tol=0.01)
                                               for a, b in zip(verts, front_px)),
              f"{pid}: frontier through the {len(front)} non-dominated points")
    rings = sorted((float(c.get("cx")), float(c.get("cy"))) for c in g.iter(SVG_NS + "circle")
                   if c.get("class") == "frontier-mark")
    check(rings == sorted(got[n] for n in want if want[n] in front), f"{pid}: a ring on each frontier point")
    ticks = [t for t in g.iter(SVG_NS + "text") if t.get("class") == "tick-label"]
    check(len(ticks) >= 6 and all(t.text and float(t.text) >= 0 for t in ticks), f"{pid}: {len(ticks)} tick labels")
    axis = [t.text for t in g.iter(SVG_NS + "text") if t.get("class") == "axis-label"]
    check(len(axis) == 2 and "perplexity" in axis[1], f"{pid}: axis labels {axis}")
plotted = {r["name"] for r in rows.values() if "ppl" in r and ("size" in r or "decode" in r)}
swatches = [e for e in root.iter(SVG_NS + "rect") if e.get("class") == "legend-swatch"]
check(len(swatches) == len(plotted), f"legend: {len(swatches)} swatches for {len(plotted)} plotted variants")

# zero-shot accuracy is the quality axis when no report has a perplexity
r = squeeze(*[os.path.join(DATA, f) for f in ["eval_f32.json", "eval_q4.json", "bench_q4.json"]], "-o", svg)
root = ET.parse(svg).getroot()
axis = [t.text for t in root.iter(SVG_NS + "text") if t.get("class") == "axis-label"]
circles = [c for c in root.iter(SVG_NS + "circle") if c.get("class") == "point"]
names = sorted(c.get("data-variant") for c in circles)
check(r.returncode == 0 and "zero-shot" in axis[1] and names == ["q4_0", "q4_0"],
      f"zero-shot quality axis; q4_0 in both panels, f32 (no size, no speed) in neither: {names}")

# ---- errors: each malformed report is named with the problem
for line in open(os.path.join(DATA, "bad", "expected.tsv")):
    name, message = line.rstrip("\n").split("\t")
    bad = os.path.join(DATA, "bad", name)
    r = squeeze(os.path.join(DATA, "ppl_f32.json"), bad, "-o", md)
    check(r.returncode == 1 and bad in r.stderr and message in r.stderr, f"{name}: {r.stderr.strip()}")

bad_utf8 = os.path.join(WORK, "bad_utf8.json")
open(bad_utf8, "wb").write(b'{"kind": "ppl", "version": 1, "model": {"path": "m.bin"}, "label": "q\xff4", "ppl": 7.5}')
r = squeeze(bad_utf8)
check(r.returncode == 1 and bad_utf8 in r.stderr and "not valid UTF-8" in r.stderr, f"invalid UTF-8: {r.stderr.strip()}")
missing = os.path.join(WORK, "no-such-report.json")
r = squeeze(missing)
check(r.returncode == 1 and missing in r.stderr and "cannot open" in r.stderr, f"missing file: {r.stderr.strip()}")
r = squeeze(os.path.join(DATA, "bench_q4.json"), "-o", svg)
check(r.returncode == 1 and "nothing to plot" in r.stderr, f"plot without quality metric: {r.stderr.strip()}")

for args, message in [([], "no report files given"),
                      ([paths[0], "-o", os.path.join(WORK, "r.png")], "must end in .md"),
                      ([paths[0], "-o", md, "-o", md], "same kind of output"),
                      ([paths[0], "--colour"], "unknown option '--colour'"),
                      ([paths[0], "-o"], "-o needs a value")]:
    r = squeeze(*args)
    check(r.returncode == 2 and message in r.stderr, f"usage error {args[1:] or args}: {r.stderr.strip()}")
unwritable = os.path.join(WORK, "no-such-dir", "r.md")
r = squeeze(paths[0], "-o", unwritable)
check(r.returncode == 1 and unwritable in r.stderr, f"unwritable output named: {r.stderr.strip()}")

print(f"{len(failures)} failure(s)")
sys.exit(1 if failures else 0)
