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


def _textbook(kind, weight, grads, lr, weight_decay, momentum=0.0, betas=(0.9, 0.999), eps=1e-8):
    """The updates as written in the papers, one array operation per symbol (eq 3.26; Kingma & Ba)."""
    b1, b2 = betas
    m = v = 0 * weight
    for t, grad in enumerate(grads, 1):
        g = grad + weight_decay * weight
        if kind == "sgd":
            v = momentum * v + g if t > 1 else g
            weight = weight - lr * (v if momentum else g)
        else:
            m = b1 * m + (1 - b1) * g
            v = b2 * v + (1 - b2) * g * g
            weight = weight - lr * (m / (1 - b1 ** t)) / (np.sqrt(v / (1 - b2 ** t)) + eps)
    return weight


@pytest.mark.parametrize("kind,make,textbook", [
    ("sgd", lambda p: SGD(p, lr=0.05, weight_decay=5e-4), {"lr": 0.05, "weight_decay": 5e-4}),
    ("sgd", lambda p: SGD(p, lr=0.05, momentum=0.9, weight_decay=5e-4),
     {"lr": 0.05, "weight_decay": 5e-4, "momentum": 0.9}),
    ("adam", lambda p: Adam(p, lr=1e-3, weight_decay=5e-4), {"lr": 1e-3, "weight_decay": 5e-4}),
    ("adam", lambda p: Adam(p, lr=3e-3, betas=(0.5, 0.9), eps=1e-3), {"lr": 3e-3, "weight_decay": 0.0,
                                                                       "betas": (0.5, 0.9), "eps": 1e-3}),
])
def test_steps_follow_the_textbook_update_and_leave_the_gradients_alone(kind, make, textbook):
    rng = np.random.default_rng(0)
    start = {"w": rng.normal(size=(3, 4)), "b": rng.normal(size=5)}
    grads = [{k: rng.normal(size=w.shape) for k, w in start.items()} for _ in range(6)]
    given = [{k: g.copy() for k, g in step.items()} for step in grads]
    params = {k: w.copy() for k, w in start.items()}
    optimizer = make(params)
    for step in given:
        optimizer.step(step)
    for key in start:
        expected = _textbook(kind, start[key], [step[key] for step in grads], **textbook)
        np.testing.assert_allclose(params[key], expected, rtol=1e-12, atol=1e-15)
    assert all(np.array_equal(g[k], c[k]) for g, c in zip(given, grads) for k in g)
