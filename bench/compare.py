"""clstm vs torch.nn.LSTM vs onnxruntime, in one process, interleaved.

The program is clstm.benchmark (also `python -m clstm bench`); see its
docstring for what is measured and how, and bench/RESULTS.md for results."""
import sys

from clstm.benchmark import main

if __name__ == "__main__":
    sys.exit(main())
