"""Optimiser arguments are checked when the optimiser is made, with one-line errors."""
import math

import numpy as np
import pytest

from minisnn import SGD, Adam


def _params():
    return {"w": np.ones(3, np.float32)}


@pytest.mark.parametrize("kwargs,says", [
    ({"lr": 0}, "lr must be a finite number > 0, got 0"),
    ({"lr": -0.1}, "lr must be a finite number > 0"),
    ({"lr": math.nan}, "lr must be a finite number > 0, got nan"),
    ({"lr": math.inf}, "lr must be a finite number > 0, got inf"),
    ({"lr": "fast"}, "lr must be a finite number > 0, got 'fast'"),
    ({"lr": 0.1, "momentum": 1.0}, r"momentum must be a finite number in \[0, 1\), got 1.0"),
    ({"lr": 0.1, "momentum": -0.5}, r"momentum must be a finite number in \[0, 1\)"),
    ({"lr": 0.1, "momentum": math.nan}, r"momentum must be a finite number in \[0, 1\), got nan"),
    ({"lr": 0.1, "weight_decay": -1e-4}, "weight_decay must be a finite number >= 0"),
    ({"lr": 0.1, "weight_decay": math.inf}, "weight_decay must be a finite number >= 0, got inf"),
])
def test_sgd_refuses_bad_arguments(kwargs, says):
    with pytest.raises(ValueError, match=says) as info:
        SGD(_params(), **kwargs)
    assert "\n" not in str(info.value)


@pytest.mark.parametrize("kwargs,says", [
    ({"lr": 0}, "lr must be a finite number > 0"),
    ({"betas": (1.0, 0.999)}, r"betas\[0\] must be a finite number in \[0, 1\), got 1.0"),
    ({"betas": (0.9, -0.1)}, r"betas\[1\] must be a finite number in \[0, 1\)"),
    ({"betas": (0.9, math.nan)}, r"betas\[1\] must be a finite number in \[0, 1\), got nan"),
    ({"betas": 0.9}, r"betas must be a pair \(beta1, beta2\), got 0.9"),
    ({"eps": 0}, "eps must be a finite number > 0, got 0"),
    ({"eps": math.inf}, "eps must be a finite number > 0, got inf"),
    ({"weight_decay": -1}, "weight_decay must be a finite number >= 0"),
])
def test_adam_refuses_bad_arguments(kwargs, says):
    with pytest.raises(ValueError, match=says) as info:
        Adam(_params(), **kwargs)
    assert "\n" not in str(info.value)


def test_good_arguments_are_kept():
    sgd = SGD(_params(), lr=0.1, momentum=0.0, weight_decay=0)
    assert (sgd.lr, sgd.momentum, sgd.weight_decay) == (0.1, 0.0, 0.0)
    adam = Adam(_params(), lr=1e-3, betas=[0.0, 0.5], eps=1e-8)
    assert adam.betas == (0.0, 0.5) and adam.eps == 1e-8


@pytest.mark.parametrize("make", [lambda p: SGD(p, lr=0.1, momentum=0.9), lambda p: Adam(p, lr=1e-3)])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_subnormal_weights_are_flushed_to_zero(make, dtype):
    """Weights decayed below the smallest normal float slow every product down: they become 0."""
    tiny = np.finfo(dtype).tiny
    params = {"w": np.array([tiny / 8, -tiny / 1024, 0.5], dtype)}
    make(params).step({"w": np.zeros(3, dtype)})
    assert params["w"][0] == 0 and params["w"][1] == 0
    assert params["w"][2] == dtype(0.5)
