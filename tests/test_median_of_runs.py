"""bench/median_of_runs.py: the PASS/MISS of issue 4's rule (the median of the
runs clears the bar), on made-up runs in compare.py's Markdown form."""
import importlib.util
import pathlib

ROOT = pathlib.Path(__file__).resolve().parents[1]


def _module():
    spec = importlib.util.spec_from_file_location("median_of_runs", ROOT / "bench" / "median_of_runs.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _run(tmp_path, i, ratio, step_us, rss):
    text = f"""### Targets (2 threads, float32)

| target | measured | bar | status |
|---|---|---:|---|
| fwd+bwd vs torch (60,32,1,50) | torch/clstm = {ratio} | >= 2.00 | x |
| step() B,I,H=(1, 8, 32): us per call | {step_us} us (torch LSTMCell 20.0 us) | <= 2.00 | x |
| clstm inference RSS growth T=2000 | {rss} MB = output 62.5 + 1 | <= output + 16 MB | x |

next section
"""
    p = tmp_path / f"run{i}.md"
    p.write_text(text)
    return str(p)


def test_median_decides_each_target(tmp_path, capsys):
    paths = [_run(tmp_path, 1, 1.5, 2.5, 70.0), _run(tmp_path, 2, 2.1, 1.5, 80.0),
             _run(tmp_path, 3, 2.3, 1.9, 79.0)]
    _module().main(paths)
    out = capsys.readouterr().out
    rows = {line.split("|")[1].strip(): line for line in out.splitlines() if line.startswith("| ")}
    # medians 2.1 (>= 2.00; the mean would miss), 1.9 us (<= 2.00), 79 MB (> 62.5 + 16)
    assert "| 2.1 |" in rows["fwd+bwd vs torch (60,32,1,50)"]
    assert rows["fwd+bwd vs torch (60,32,1,50)"].rstrip().endswith("PASS |")
    assert "| 1.9 us |" in rows["step() B,I,H=(1, 8, 32): us per call"]
    assert rows["step() B,I,H=(1, 8, 32): us per call"].rstrip().endswith("PASS |")
    assert rows["clstm inference RSS growth T=2000"].rstrip().endswith("MISS |")
    assert "2 of 3 PASS by the median" in out
