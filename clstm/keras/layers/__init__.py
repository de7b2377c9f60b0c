"""Keras-style layers: LSTM, Bidirectional, Dense, Embedding, Dropout."""
from .base import Layer
from .core import Dense, Dropout, Embedding
from .recurrent import LSTM, Bidirectional

__all__ = ["Layer", "LSTM", "Bidirectional", "Dense", "Embedding", "Dropout"]


def get(class_name):
    """A layer class by name (for configs)."""
    classes = {c.__name__: c for c in (LSTM, Bidirectional, Dense, Embedding, Dropout)}
    if class_name not in classes:
        raise ValueError(f"unknown layer class {class_name!r}; expected one of {sorted(classes)}")
    return classes[class_name]
