"""Random state and small helpers shared by clstm.keras.

One NumPy Generator drives weight initialisation, dropout masks and
shuffling in fit(), so set_random_seed(seed) makes a run repeatable, as
keras.utils.set_random_seed does."""
import random

import numpy as np

_state = {"rng": np.random.default_rng()}


def set_random_seed(seed):
    """Seed clstm.keras's generator, NumPy's global one and Python's random."""
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"seed must be a non-negative int, got {seed!r}")
    seed = int(seed)
    _state["rng"] = np.random.default_rng(seed)
    np.random.seed(seed % 2**32)
    random.seed(seed)


def rng():
    """The generator behind initialisers, dropout and shuffling."""
    return _state["rng"]
