"""clstm vs torch.nn.LSTM vs onnxruntime, interleaved in one process: the
LSTM shapes (forward, fwd+bwd, float32/float64), a training epoch of the
seed model (clstm.keras vs a torch loop), and peak memory (each measurement
in a fresh interpreter); then the performance targets with PASS/MISS.

The program is clstm.benchmark (also `python -m clstm bench`); see its
docstring or --help for what is measured and how (--only lstm|epoch|memory,
--dtype float32|float64|both, --quick), and bench/RESULTS.md for results."""
import sys

from clstm.benchmark import main

if __name__ == "__main__":
    sys.exit(main())
