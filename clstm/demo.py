"""python -m clstm demo: forecast weekly Mauna Loa CO2 with an LSTM.

The seed's model (LSTM(50) + Dense(1), Adam, MSE, batch 32) learns the
next week's change in CO2 from the 52 changes before it.  The series'
first 80% trains it, the last 20% (in time order, never seen) tests it:
the forecast is the last value plus the predicted change, and it is
compared with the naive forecast (next week = this week).  Data:
clstm/data/README.md."""
import argparse
import os
import time

import numpy as np

DATA = os.path.join(os.path.dirname(__file__), "data", "co2_mauna_loa_weekly.csv")


def load_co2(path=DATA):
    """(dates as YYYYMMDD ints, CO2 ppmv float64), missing weeks interpolated."""
    raw = np.genfromtxt(path, delimiter=",", skip_header=1, missing_values="",
                        filling_values=np.nan)
    dates, co2 = raw[:, 0].astype(np.int64), raw[:, 1]
    bad = np.isnan(co2)
    idx = np.arange(len(co2))
    co2[bad] = np.interp(idx[bad], idx[~bad], co2[~bad])
    return dates, co2


def windows(series, width):
    """Inputs (N, width, 1) of consecutive values and the value after each."""
    n = len(series) - width
    idx = np.arange(width)[None, :] + np.arange(n)[:, None]
    return series[idx][..., None], series[width:]


def run(epochs=30, window=52, seed=0, plot=None, verbose=1, out=print):
    from .keras import Sequential, callbacks, utils
    from .keras.layers import LSTM, Dense

    utils.set_random_seed(seed)
    dates, co2 = load_co2()
    diff = np.diff(co2)                           # weekly change, ppm
    split = int(0.8 * len(diff))
    mean, std = diff[:split].mean(), diff[:split].std()
    z = ((diff - mean) / std).astype(np.float32)
    x, y = windows(z, window)                     # y[i] is the change after window i
    n_train = split - window
    x_tr, y_tr, x_te, y_te = x[:n_train], y[:n_train, None], x[n_train:], y[n_train:, None]
    out(f"Mauna Loa weekly CO2, {dates[0]}..{dates[-1]} ({len(co2)} weeks); "
        f"train {len(x_tr)} windows of {window} weeks, test {len(x_te)} (the last 20%)")

    model = Sequential()
    model.add(LSTM(50, input_shape=(window, 1)))
    model.add(Dense(1))
    model.compile(optimizer="adam", loss="mean_squared_error")
    stop = callbacks.EarlyStopping(monitor="val_loss", patience=6, restore_best_weights=True)
    start = time.perf_counter()
    model.fit(x_tr, y_tr, epochs=epochs, batch_size=32, validation_split=0.1, callbacks=[stop],
              verbose=verbose)
    train_time = time.perf_counter() - start

    pred_change = model.predict(x_te)[:, 0] * std + mean
    last = co2[window + n_train:-1]               # the value before each test target
    truth = co2[window + n_train + 1:]
    forecast = last + pred_change
    rmse = float(np.sqrt(np.mean((forecast - truth) ** 2)))
    naive = float(np.sqrt(np.mean((last - truth) ** 2)))
    out(f"test RMSE: LSTM {rmse:.3f} ppm, naive last-value {naive:.3f} ppm "
        f"({100 * (1 - rmse / naive):.0f}% lower); training took {train_time:.1f} s")
    if plot:
        _plot(plot, dates[window + n_train + 1:], truth, forecast, last, out)
    return {"rmse": rmse, "naive_rmse": naive, "train_seconds": train_time}


def _plot(path, dates, truth, forecast, naive, out):
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        out("matplotlib is not installed: no plot (pip install matplotlib)")
        return
    years = dates // 10000 + (dates // 100 % 100 - 1) / 12 + (dates % 100 - 1) / 365.25
    fig, ax = plt.subplots(figsize=(10, 4))
    ax.plot(years, truth, "k-", lw=1, label="measured")
    ax.plot(years, forecast, "C3-", lw=1, label="LSTM, one week ahead")
    ax.plot(years, naive, "C0:", lw=1, label="naive (last week)")
    ax.set_xlabel("year")
    ax.set_ylabel("CO2 (ppmv)")
    ax.set_title("Mauna Loa weekly CO2: test period forecasts")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    out(f"plot written to {os.path.abspath(path)}")


def main(argv=None):
    p = argparse.ArgumentParser(prog="python -m clstm demo", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--epochs", type=int, default=30, help="at most this many (early stopping)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--plot", default="clstm_demo_forecast.png",
                   help="where to write the plot when matplotlib is installed ('' for none)")
    p.add_argument("--quiet", action="store_true", help="no per-epoch progress")
    a = p.parse_args(argv)
    run(epochs=a.epochs, seed=a.seed, plot=a.plot or None, verbose=0 if a.quiet else 1)
    return 0
