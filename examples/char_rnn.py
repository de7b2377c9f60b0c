"""Character-level text generation with clstm.keras.

Demonstrates a next-character language model written exactly as in Keras:

    Embedding(vocab, 32) -> LSTM(hidden, return_sequences=True) -> Dense(vocab, softmax)

trained with sparse_categorical_crossentropy and Adam on a small public-domain
text shipped in examples/data/ (the Gettysburg Address, part of the Declaration
of Independence and eight of Shakespeare's sonnets, about 10 KB).  After training
it samples text from a prompt at several temperatures, one character at a time,
with a *stateful* copy of the model (so each new character costs one LSTM step,
not a re-run of the whole window).  --save / --load round-trip the model
through model.save / clstm.keras.load_model.

    python examples/char_rnn.py                       # train (~1.5-2 min on 2 cores), then generate
    python examples/char_rnn.py --save char.clstm     # ... and keep the model
    python examples/char_rnn.py --load char.clstm --prompt "Shall I " --temperature 0.3 0.8
"""
import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

from clstm.keras import Sequential, load_model, utils
from clstm.keras.layers import LSTM, Dense, Embedding
from clstm.keras.optimizers import Adam

DATA_DIR = Path(__file__).resolve().parent / "data"
EMBED_DIM = 32


# ---- text and vocabulary ---------------------------------------------------------------

def load_corpus(paths=None):
    """The training text: the given files, or every examples/data/*.txt, joined by blank lines."""
    paths = [Path(p) for p in paths] if paths else sorted(DATA_DIR.glob("*.txt"))
    if not paths:
        raise SystemExit(f"no text files found in {DATA_DIR}")
    return "\n\n".join(p.read_text(encoding="utf-8").strip() for p in paths) + "\n"


def build_vocab(text):
    """The sorted distinct characters of text (a string of length V)."""
    return "".join(sorted(set(text)))


def encode(text, vocab):
    """text (length N) -> int32 indices (N,) into vocab; unknown characters are an error."""
    index = {ch: i for i, ch in enumerate(vocab)}
    missing = sorted(set(text) - set(index))
    if missing:
        raise SystemExit(f"characters not in the model's vocabulary: {''.join(missing)!r}")
    return np.array([index[ch] for ch in text], dtype=np.int32)


def make_windows(ids, seq_len, step):
    """Training pairs from ids (N,): inputs x (S, seq_len) and targets y (S, seq_len),
    y being x shifted by one character; windows start every `step` characters."""
    starts = np.arange(0, len(ids) - seq_len - 1, step)
    if len(starts) == 0:
        raise SystemExit(f"the text ({len(ids)} characters) is too short for --seq-len "
                         f"{seq_len}")
    offsets = starts[:, None] + np.arange(seq_len)[None, :]
    return ids[offsets], ids[offsets + 1]


def vocab_path(model_path):
    """Where the vocabulary of a saved model is kept: next to it, as JSON."""
    return Path(str(model_path) + ".vocab.json")


# ---- models -------------------------------------------------------------------------

def build_model(vocab_size, hidden, learning_rate):
    """The language model: indices (B, T) -> next-character probabilities (B, T, V)."""
    model = Sequential([
        Embedding(vocab_size, EMBED_DIM),
        LSTM(hidden, return_sequences=True),
        Dense(vocab_size, activation="softmax"),
    ], name="char_rnn")
    model.compile(optimizer=Adam(learning_rate=learning_rate, clipnorm=5.0),
                  loss="sparse_categorical_crossentropy")
    return model


def stateful_copy(model, batch_size):
    """A copy of the trained model whose LSTM keeps its state between calls, for
    generation: (batch_size, t) -> (batch_size, t, V), continuing where the last call ended."""
    emb, lstm, dense = model.layers
    gen = Sequential([
        Embedding(emb.input_dim, emb.output_dim),
        LSTM(lstm.units, return_sequences=True, stateful=True),
        Dense(dense.units, activation="softmax"),
    ], name="char_rnn_generator")
    gen.build((batch_size, None))
    gen.set_weights(model.get_weights())
    return gen


# ---- generation -----------------------------------------------------------------------

def sample(probs, temperatures, rng):
    """One index per row of probs (B, V), row i drawn from probs[i] ** (1 / temperatures[i]),
    renormalised.  Returns int32 (B,)."""
    logp = np.log(np.maximum(probs.astype(np.float64), 1e-12)) / temperatures[:, None]
    p = np.exp(logp - logp.max(axis=1, keepdims=True))
    p /= p.sum(axis=1, keepdims=True)
    return np.array([rng.choice(p.shape[1], p=row) for row in p], dtype=np.int32)


def generate(model, vocab, prompt, temperatures, length, seed):
    """One continuation of `prompt` (length characters) per temperature, sampled in
    parallel: the batch holds one sequence per temperature.  Returns a list of strings."""
    rng = np.random.default_rng(seed)
    temps = np.asarray(temperatures, dtype=np.float64)
    gen = stateful_copy(model, len(temps))
    x = np.tile(encode(prompt, vocab), (len(temps), 1))              # (B, len(prompt))
    out = []
    for _ in range(length):
        probs = gen(x)[:, -1, :]                                     # (B, V) for the next char
        nxt = sample(probs, temps, rng)
        out.append(nxt)
        x = nxt[:, None]                                             # (B, 1): feed it back
    chars = np.stack(out, axis=1) if out else np.zeros((len(temps), 0), np.int32)
    return [prompt + "".join(vocab[i] for i in row) for row in chars]


# ---- command line -----------------------------------------------------------------------

def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--epochs", type=int, default=6, help="training epochs")
    p.add_argument("--seq-len", type=int, default=80, help="characters per training window")
    p.add_argument("--step", type=int, default=3,
                   help="characters between the starts of consecutive training windows")
    p.add_argument("--hidden", type=int, default=256, help="LSTM units")
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--learning-rate", type=float, default=0.005)
    p.add_argument("--temperature", type=float, nargs="+", default=[0.5, 1.0],
                   help="sampling temperature(s): low = conservative, high = adventurous")
    p.add_argument("--length", type=int, default=400, help="characters to generate per sample")
    p.add_argument("--prompt", default="We hold ", help="text the samples start from")
    p.add_argument("--seed", type=int, default=0, help="seed for weights, shuffling, sampling")
    p.add_argument("--text", nargs="+", metavar="FILE",
                   help="train on these UTF-8 text files instead of examples/data/*.txt")
    p.add_argument("--save", metavar="PATH", help="save the trained model here (model.save)")
    p.add_argument("--load", metavar="PATH", help="load a saved model and only generate")
    args = p.parse_args(argv)
    for name in ("epochs", "seq_len", "step", "hidden", "batch_size"):
        if getattr(args, name) < 1:
            p.error(f"--{name.replace('_', '-')} must be >= 1")
    if args.length < 0:
        p.error("--length must be >= 0")
    if not args.prompt:
        p.error("--prompt must not be empty")
    if any(t <= 0 for t in args.temperature):
        p.error("--temperature values must be > 0")
    if args.load and args.save:
        p.error("--load and --save exclude each other (a loaded model is not trained)")
    return args


def train(args):
    """Builds and fits the model on the corpus; returns (model, vocab)."""
    text = load_corpus(args.text)
    vocab = build_vocab(text)
    x, y = make_windows(encode(text, vocab), args.seq_len, args.step)
    print(f"corpus: {len(text)} characters, vocabulary of {len(vocab)}; "
          f"{len(x)} windows of {args.seq_len}")
    model = build_model(len(vocab), args.hidden, args.learning_rate)
    model.build((None, args.seq_len))
    model.summary()
    start = time.perf_counter()
    history = model.fit(x, y, batch_size=args.batch_size, epochs=args.epochs, verbose=1)
    print(f"trained {len(history.epoch)} epochs in {time.perf_counter() - start:.1f} s; "
          f"final loss {history.history['loss'][-1]:.4f}")
    return model, vocab


def main(argv=None):
    args = parse_args(argv)
    utils.set_random_seed(args.seed)
    if args.load:
        model = load_model(args.load)
        vocab = json.loads(vocab_path(args.load).read_text(encoding="utf-8"))["vocab"]
        print(f"loaded model from {args.load} (vocabulary of {len(vocab)})")
    else:
        model, vocab = train(args)
        if args.save:
            model.save(args.save)
            vocab_path(args.save).write_text(json.dumps({"vocab": vocab}), encoding="utf-8")
            print(f"saved model to {args.save} and its vocabulary to {vocab_path(args.save)}")
    samples = generate(model, vocab, args.prompt, args.temperature, args.length, args.seed)
    for t, s in zip(args.temperature, samples):
        print(f"\n--- temperature {t:g} ---")
        print(s)
    return 0


if __name__ == "__main__":
    sys.exit(main())
