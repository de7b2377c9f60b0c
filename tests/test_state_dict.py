"""Parameters by PyTorch name: state_dict round trips, loads are checked and
all-or-nothing."""
import numpy as np
import pytest

import clstm


def test_round_trip_copies():
    a = clstm.LSTM(3, 4, num_layers=2, bidirectional=True, seed=0)
    b = clstm.LSTM(3, 4, num_layers=2, bidirectional=True, seed=1)
    sd = a.state_dict()
    b.load_state_dict(sd)
    x = np.random.default_rng(0).standard_normal((5, 2, 3)).astype(np.float32)
    np.testing.assert_array_equal(a(x)[0], b(x)[0])
    sd["weight_hh_l0"][...] = 0          # a copy: the model is unchanged
    assert a.weight_hh_l0.any()


def test_keys_and_shapes_checked_all_or_nothing():
    a = clstm.LSTM(3, 4, num_layers=2)
    before = a.state_dict()
    sd = a.state_dict()
    sd["weight_hh_l1"] = np.zeros((16, 5))
    with pytest.raises(ValueError, match=r"weight_hh_l1 must have shape \(16, 4\), got \(16, 5\)"):
        a.load_state_dict({**sd, "weight_ih_l0": np.ones((16, 3))})
    np.testing.assert_array_equal(a.weight_ih_l0, before["weight_ih_l0"])
    del sd["weight_hh_l1"]
    with pytest.raises(KeyError, match=r"missing \['weight_hh_l1'\]"):
        a.load_state_dict(sd)
    with pytest.raises(KeyError, match=r"unexpected \['extra'\]"):
        a.load_state_dict({**before, "extra": np.zeros(1)})
    missing, unexpected = a.load_state_dict({"bias_ih_l0": np.ones(16)}, strict=False)
    assert "weight_ih_l0" in missing and unexpected == []
    np.testing.assert_array_equal(a.bias_ih_l0, 1)
    with pytest.raises(TypeError, match="mapping"):
        a.load_state_dict([1, 2])
    with pytest.raises(TypeError, match="bias_hh_l0 must be a floating-point"):
        a.load_state_dict({**before, "bias_hh_l0": np.zeros(16, int)})


def test_dtype_conversion_and_attribute_assignment():
    a = clstm.LSTM(3, 4, dtype=np.float64)
    a.load_state_dict({k: v.astype(np.float32) for k, v in a.state_dict().items()})
    assert a.weight_ih_l0.dtype == np.float64
    a.weight_hh_l0 = np.ones((16, 4), np.float32)
    assert a.weight_hh_l0.dtype == np.float64 and a.weight_hh_l0.all()
    with pytest.raises(ValueError, match=r"weight_hh_l0 must have shape"):
        a.weight_hh_l0 = np.ones((4, 16))
    with pytest.raises(AttributeError, match="weight_hh_l1"):
        a.weight_hh_l1


def test_in_place_updates_take_effect():
    a = clstm.LSTM(2, 3, dtype=np.float64, seed=0)
    x = np.ones((2, 1, 2))
    y1, _ = a(x)
    for p in a.parameters():
        p *= 0
    y2, _ = a(x)
    assert y1.any() and not y2.any()


def test_bias_false_has_no_bias_params():
    a = clstm.LSTM(2, 3, bias=False, bidirectional=True)
    assert [n for n, _ in a.named_parameters()] == [
        "weight_ih_l0", "weight_hh_l0", "weight_ih_l0_reverse", "weight_hh_l0_reverse"]


def test_repr():
    assert repr(clstm.LSTM(8, 32, num_layers=2, bidirectional=True)) == \
        "LSTM(8, 32, num_layers=2, bidirectional=True)"
