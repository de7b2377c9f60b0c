"""clstm: a CPU-optimized LSTM for Python.

A C core (BLAS gate GEMMs, vectorized OpenMP gate kernels) under a NumPy API
with PyTorch's semantics: ``clstm.LSTM`` loads a ``torch.nn.LSTM`` state_dict
unchanged and trains by backpropagation through time.
"""
from ._threads import get_num_threads, set_num_threads
from .config import show_config
from .functional import LSTMCache, lstm_backward, lstm_forward
from .lstm import LSTM

__version__ = "0.1.0"
__all__ = ["LSTM", "LSTMCache", "lstm_forward", "lstm_backward", "set_num_threads",
           "get_num_threads", "show_config", "__version__"]
