"""The median of several `bench/compare.py --markdown` runs, target by target.

    python bench/median_of_runs.py run1.md run2.md run3.md

Reads each file's "### Targets" table and prints one Markdown table: every
run's measured value, their median, the bar, and PASS/MISS for the median (a
target passes when its median clears the bar, as issue 4 counts them).
"""
import re
import statistics
import sys


def targets(path):
    """{target: (measured, bar)} from one run's Targets table."""
    text = open(path, encoding="utf-8").read()
    rows = {}
    for line in text[text.index("### Targets"):].splitlines()[4:]:
        if not line.startswith("|"):
            break
        cells = [c.strip() for c in line.strip("|").split("|")]
        rows[cells[0]] = (cells[1], cells[2])
    return rows


def number(measured):
    """The figure a target is judged by: after '=' (ratios), else the first."""
    m = re.search(r"=\s*([0-9.]+)|^([0-9.]+)", measured)
    return float(m.group(1) or m.group(2))


def unit(measured):
    head = measured.split("(")[0]
    return " us" if "us" in head else " MB" if "MB" in measured else "%" if "%" in measured else ""


def passes(value, bar, first_measured):
    limit = float(re.search(r"[0-9.]+", bar).group())
    if "output +" in bar:      # memory: the output's own size plus a margin
        return value <= float(re.search(r"output ([0-9.]+)", first_measured).group(1)) + limit
    if "<=" in bar:
        return value <= limit
    if ">=" in bar:
        return value >= limit
    return value > limit


def main(paths):
    runs = [targets(p) for p in paths]
    heads = " | ".join(f"run {i + 1}" for i in range(len(runs)))
    print(f"| target | {heads} | median | bar | status (median) |")
    print("|---|" + "---:|" * (len(runs) + 1) + "---|---|")
    n_pass = 0
    for name, (first, bar) in runs[0].items():
        values = [number(r[name][0]) for r in runs]
        u = unit(first)
        med = statistics.median(values)
        ok = passes(med, bar, first)
        n_pass += ok
        shown = " | ".join(f"{v:g}{u}" for v in values)
        print(f"| {name} | {shown} | {med:g}{u} | {bar} | {'PASS' if ok else 'MISS'} |")
    print(f"\n{n_pass} of {len(runs[0])} PASS by the median")


if __name__ == "__main__":
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    main(sys.argv[1:])
