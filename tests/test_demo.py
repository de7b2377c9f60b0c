"""The main job: python -m clstm demo trains on the shipped CO2 series,
beats the naive forecast, and stays well under a minute."""
import subprocess
import sys

import numpy as np

from clstm import demo


def test_data_loads_with_gaps_filled():
    dates, co2 = demo.load_co2()
    assert len(co2) == 2284 and dates[0] == 19580329 and dates[-1] // 10000 == 2001
    assert np.isfinite(co2).all() and 310 < co2.min() and co2.max() < 380


def test_demo_beats_naive_forecast_quickly():
    lines = []
    result = demo.run(verbose=0, out=lines.append)
    assert result["rmse"] < 0.9 * result["naive_rmse"]
    assert result["train_seconds"] < 60
    assert any("test RMSE" in line for line in lines)


def test_cli_demo_runs(tmp_path):
    out = subprocess.run([sys.executable, "-m", "clstm", "demo", "--quiet", "--epochs", "2",
                          "--plot", str(tmp_path / "p.png")],
                         capture_output=True, text=True, cwd=tmp_path, timeout=120)
    assert out.returncode == 0, out.stderr
    assert "test RMSE: LSTM" in out.stdout
    out = subprocess.run([sys.executable, "-m", "clstm", "--help"], capture_output=True,
                         text=True, cwd=tmp_path)
    assert all(cmd in out.stdout for cmd in ("demo", "info", "bench"))
