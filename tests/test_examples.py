"""Smoke tests of the scripts in examples/: each runs as a subprocess with tiny
settings (a few seconds) and must exit 0 and print its key lines."""
import re
import subprocess
import sys
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
CHAR_RNN = EXAMPLES / "char_rnn.py"
CLASSIFY = EXAMPLES / "classify_sequences.py"
TINY_CHAR_RNN = ["--epochs", "1", "--seq-len", "20", "--step", "40", "--hidden", "16",
                 "--length", "40", "--temperature", "0.5", "1.0", "--seed", "3"]


def run(script, args, cwd):
    """Runs `python script args...` in cwd; returns its stdout (fails on a non-zero exit)."""
    proc = subprocess.run([sys.executable, str(script), *args], cwd=cwd, capture_output=True,
                          text=True, timeout=300)
    assert proc.returncode == 0, f"exit {proc.returncode}\nstdout:\n{proc.stdout}\n" \
                                 f"stderr:\n{proc.stderr}"
    return proc.stdout


def samples(out):
    """{temperature: generated text} from char_rnn's output."""
    parts = re.split(r"^--- temperature (\S+) ---\n", out, flags=re.M)
    return {t: text.rstrip("\n") for t, text in zip(parts[1::2], parts[2::2])}


def test_shipped_texts_and_readme():
    data = EXAMPLES / "data"
    texts = sorted(data.glob("*.txt"))
    assert len(texts) >= 3
    assert 5_000 <= sum(p.stat().st_size for p in texts) <= 15_000
    readme = (data / "README.md").read_text(encoding="utf-8")
    for p in texts:
        assert p.name in readme
    assert "public domain" in readme.lower()


def test_char_rnn_trains_and_generates(tmp_path):
    out = run(CHAR_RNN, TINY_CHAR_RNN + ["--prompt", "Four score"], tmp_path)
    assert re.search(r"^corpus: \d+ characters, vocabulary of \d+", out, re.M)
    assert "Epoch 1/1" in out
    assert re.search(r"final loss \d+\.\d+", out)
    gen = samples(out)
    assert list(gen) == ["0.5", "1"]
    for text in gen.values():
        assert text.startswith("Four score") and len(text) == len("Four score") + 40


def test_char_rnn_save_then_load(tmp_path):
    model = tmp_path / "char.clstm"
    trained = run(CHAR_RNN, TINY_CHAR_RNN + ["--save", str(model)], tmp_path)
    assert f"saved model to {model}" in trained
    assert model.exists() and Path(str(model) + ".vocab.json").exists()
    loaded = run(CHAR_RNN, TINY_CHAR_RNN + ["--load", str(model)], tmp_path)
    assert f"loaded model from {model}" in loaded
    assert "Epoch" not in loaded                       # no training when loading
    # same weights, same sampling seed: the same text
    assert samples(loaded) == samples(trained)


def test_char_rnn_rejects_unknown_prompt_characters(tmp_path):
    proc = subprocess.run([sys.executable, str(CHAR_RNN), *TINY_CHAR_RNN, "--prompt", "caf\u00e9"],
                          cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert proc.returncode != 0
    assert "not in the model's vocabulary" in proc.stderr


def test_classify_sequences(tmp_path):
    out = run(CLASSIFY, ["--epochs", "2", "--samples", "300", "--seed", "1"], tmp_path)
    assert "Epoch 1/2" in out
    m = re.search(r"^test accuracy: (\d\.\d+) .*chance level \(majority class\): (\d\.\d+)$",
                  out, re.M)
    assert m, out
    assert 0 <= float(m.group(1)) <= 1 and 0.3 <= float(m.group(2)) <= 0.4
    assert len(re.findall(r"^  unpadded +p = \[", out, re.M)) == 1
    assert len(re.findall(r"^  (post|pre)-padded to \d+ +p = \[", out, re.M)) == 6
    assert "padding does not change the prediction" in out


@pytest.mark.parametrize("script", [CHAR_RNN, CLASSIFY])
def test_help(script, tmp_path):
    out = run(script, ["--help"], tmp_path)
    assert "--epochs" in out and "--seed" in out
