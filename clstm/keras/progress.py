"""The per-epoch progress line of fit(), in Keras's format: redrawn live
on a terminal with verbose=1 (written once at the end of the epoch when the
output is not a terminal, e.g. a log file), one line per epoch with
verbose=2."""
import sys
import time


def format_logs(logs):
    return " - ".join(f"{k}: {v:.4f}" for k, v in logs.items())


class Progress:
    def __init__(self, steps, verbose, stream=None):
        self.steps = steps
        self.verbose = verbose
        self.stream = stream or sys.stdout
        self.start = time.perf_counter()
        self._last = 0.0
        self._width = 0          # length of the line drawn last, to blank its tail
        isatty = getattr(self.stream, "isatty", None)
        self.live = bool(isatty and isatty())

    def update(self, step, logs):
        """After batch `step` (1-based) with running logs; redraws at most ~20x/s."""
        if self.verbose != 1 or not self.live:
            return
        now = time.perf_counter()
        if step < self.steps and now - self._last < 0.05:
            return
        self._last = now
        self._draw(step, logs)

    def _draw(self, step, logs):
        width = 20
        done = int(width * step / self.steps)
        bar = "=" * max(done - 1, 0) + (">" if done < width else "=") + "." * (width - done)
        n = len(str(self.steps))
        line = f"{step:>{n}}/{self.steps} [{bar}] - {self._rate(step)} - {format_logs(logs)}"
        pad = max(self._width - len(line), 0)
        self._width = len(line)
        self.stream.write(("\r" if self.live else "") + line + " " * pad)
        self.stream.flush()

    def finish(self, logs):
        elapsed = time.perf_counter() - self.start
        if self.verbose == 1:
            self._draw(self.steps, logs)
            self.stream.write("\n")
        elif self.verbose == 2:
            self.stream.write(f"{self.steps}/{self.steps} - {elapsed:.0f}s - "
                              f"{self._rate(self.steps)} - {format_logs(logs)}\n")
        self.stream.flush()
        return elapsed

    def _rate(self, step):
        per = (time.perf_counter() - self.start) / max(step, 1)
        return f"{per * 1e3:.0f}ms/step" if per >= 1e-3 else f"{per * 1e6:.0f}us/step"
