"""Variable-length sequence classification with masking in clstm.keras.

Demonstrates Embedding(mask_zero=True) feeding a Bidirectional LSTM: index 0
is padding, and the mask it produces makes both LSTM directions skip the padded
steps inside the C core, so a sequence's prediction does not depend on how
much padding surrounds it (shown at the end, for post- and pre-padding).

The task is generated here.  Sequences of 5-40 random tokens from 1..vocab-1
are labelled by which of two two-token patterns, A = "3 4" and B = "4 3",
occurs first:

    0  "A first":  A occurs, and B does not occur before A's first occurrence
    1  "B first":  B occurs, and A does not occur before B's first occurrence
    2  "neither":  neither pattern occurs

Single tokens say nothing (3 and 4 are everywhere, and A and B are made of the
same tokens); the model has to spot the patterns and remember their order across
up to 40 steps.  The classes are balanced by rejection sampling, so chance is
about 1/3.  The model is Embedding(vocab, 16, mask_zero=True) ->
Bidirectional(LSTM(32)) -> Dense(3, softmax), trained with validation_split and
EarlyStopping(restore_best_weights=True).

    python examples/classify_sequences.py                 # a few seconds on 2 idle cores
    python examples/classify_sequences.py --samples 8000 --epochs 40
"""
import argparse
import sys
import time

import numpy as np

from clstm.keras import Sequential, utils
from clstm.keras.callbacks import EarlyStopping
from clstm.keras.layers import LSTM, Bidirectional, Dense, Embedding
from clstm.keras.optimizers import Adam

PATTERN_A, PATTERN_B = (3, 4), (4, 3)
CLASS_NAMES = ("A first", "B first", "neither")


# ---- the synthetic task ------------------------------------------------------------------

def first_occurrence(seq, pattern):
    """The index where the 2-token `pattern` first starts in seq (int array (L,)), or None."""
    hits = np.flatnonzero((seq[:-1] == pattern[0]) & (seq[1:] == pattern[1]))
    return int(hits[0]) if len(hits) else None


def label_of(seq):
    """The class (0, 1 or 2) of an unpadded sequence (int array (L,))."""
    a, b = first_occurrence(seq, PATTERN_A), first_occurrence(seq, PATTERN_B)
    if a is None and b is None:
        return 2
    if b is None or (a is not None and a < b):
        return 0
    return 1


def pad(seqs, maxlen, side="post"):
    """Sequences (list of int arrays, each of length <= maxlen) -> int32 (N, maxlen),
    zero-padded after ("post") or before ("pre") each sequence."""
    out = np.zeros((len(seqs), maxlen), dtype=np.int32)
    for i, s in enumerate(seqs):
        if side == "post":
            out[i, :len(s)] = s
        else:
            out[i, maxlen - len(s):] = s
    return out


def make_dataset(n, vocab, min_len, max_len, rng):
    """n random sequences, as many of each class (up to one), padded to max_len:
    x int32 (n, max_len), labels y int32 (n,), and the unpadded sequences (list)."""
    n_classes = len(CLASS_NAMES)
    quota = [n // n_classes + (c < n % n_classes) for c in range(n_classes)]
    seqs, labels = [], []
    while len(seqs) < n:                        # rejection sampling into balanced classes
        seq = rng.integers(1, vocab, size=int(rng.integers(min_len, max_len + 1)))
        c = label_of(seq)
        if quota[c]:
            quota[c] -= 1
            seqs.append(seq)
            labels.append(c)
    order = rng.permutation(n)
    seqs = [seqs[i] for i in order]
    return pad(seqs, max_len), np.array(labels, np.int32)[order], seqs


# ---- the model -----------------------------------------------------------------------------

def build_model(vocab, n_classes):
    """Padded indices (B, T) -> class probabilities (B, n_classes)."""
    model = Sequential([
        Embedding(vocab, 16, mask_zero=True),
        Bidirectional(LSTM(32)),
        Dense(n_classes, activation="softmax"),
    ], name="pattern_order")
    model.compile(optimizer=Adam(learning_rate=0.005), loss="sparse_categorical_crossentropy",
                  metrics=["accuracy"])
    return model


def pick_example(seqs, max_len):
    """A short sequence containing both patterns (to show), else the first one."""
    for s in seqs:
        if len(s) <= max_len and None not in (first_occurrence(s, PATTERN_A),
                                              first_occurrence(s, PATTERN_B)):
            return s
    return seqs[0]


def padding_check(model, seq, max_len):
    """Predicts one sequence (int array (L,)) zero-padded to several lengths, after and
    before it; prints the probabilities and returns their largest difference."""
    print(f"\nthe same sequence with different padding (true class: "
          f"{CLASS_NAMES[label_of(seq)]!r}):")
    print("  tokens:", " ".join(map(str, seq)))
    versions = [("unpadded", pad([seq], len(seq)))]
    versions += [(f"{side}-padded to {k * max_len}", pad([seq], k * max_len, side))
                 for side in ("post", "pre") for k in (1, 2, 4)]
    probs = []
    for name, x in versions:
        p = model.predict(x)[0]                                          # (n_classes,)
        probs.append(p)
        print(f"  {name:<18} p = [{', '.join(f'{v:.6f}' for v in p)}]"
              f"  -> {CLASS_NAMES[int(np.argmax(p))]!r}")
    diff = float(np.max(np.abs(np.array(probs) - probs[0])))
    print(f"largest difference between these predictions: {diff:.2e}")
    return diff


# ---- command line ----------------------------------------------------------------------------

def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--epochs", type=int, default=20,
                   help="most epochs (EarlyStopping may stop sooner)")
    p.add_argument("--samples", type=int, default=4000, help="training + validation sequences")
    p.add_argument("--seed", type=int, default=0, help="seed for the data, weights and shuffling")
    p.add_argument("--vocab", type=int, default=8, help="alphabet size incl. padding 0")
    p.add_argument("--max-len", type=int, default=40, help="longest sequence = padded length")
    p.add_argument("--patience", type=int, default=3, help="EarlyStopping patience")
    args = p.parse_args(argv)
    if args.epochs < 1 or args.samples < 10:
        p.error("need --epochs >= 1 and --samples >= 10")
    if args.vocab < 5 or args.max_len < 5:
        p.error("need --vocab >= 5 (tokens 3 and 4 form the patterns) and --max-len >= 5")
    return args


def main(argv=None):
    args = parse_args(argv)
    utils.set_random_seed(args.seed)
    rng = np.random.default_rng(args.seed)
    min_len = 5
    x, y, _ = make_dataset(args.samples, args.vocab, min_len, args.max_len, rng)
    x_test, y_test, test_seqs = make_dataset(max(args.samples // 4, 10), args.vocab, min_len,
                                             args.max_len, rng)
    print(f"{len(x)} training sequences (20% held out for validation), {len(x_test)} test "
          f"sequences; lengths {min_len}-{args.max_len}, zero-padded to {args.max_len}")
    print("example:", " ".join(map(str, x[0])), f"-> {CLASS_NAMES[y[0]]!r}")

    model = build_model(args.vocab, len(CLASS_NAMES))
    model.build((None, args.max_len))
    model.summary()
    # val_loss keeps creeping down long after the task is solved; stop on accuracy instead
    stop = EarlyStopping(monitor="val_accuracy", patience=args.patience,
                         restore_best_weights=True, verbose=1)
    start = time.perf_counter()
    history = model.fit(x, y, batch_size=32, epochs=args.epochs, validation_split=0.2,
                        callbacks=[stop], verbose=2)
    print(f"trained {len(history.epoch)} epochs in {time.perf_counter() - start:.1f} s")

    loss, acc = model.evaluate(x_test, y_test, verbose=0)
    chance = np.bincount(y_test, minlength=len(CLASS_NAMES)).max() / len(y_test)
    print(f"test accuracy: {acc:.4f} (loss {loss:.4f}); chance level (majority class): "
          f"{chance:.4f}")

    diff = padding_check(model, pick_example(test_seqs, args.max_len // 2), args.max_len)
    print("padding does not change the prediction" if diff < 1e-5 else
          "WARNING: padding changed the prediction")
    return 0


if __name__ == "__main__":
    sys.exit(main())
