"""Input encoding (section 4.1.3): bipolar Poisson rate coding of images, or given spike frames.

Per time step and pixel, draw u ~ U(0, 1) and emit

    s_t = sign(x) * [ scale * |x| > u ]

so a pixel of intensity x fires with probability min(1, scale |x|) per step. ``scale`` is the
choice algorithm.md asks us to make explicit: the thesis compares the raw intensity
(``scale=1``); the authors' MNIST code compares |x| / 2 (``scale=0.5``, at most one spike every
other step). Colour images are standardised first, so their values are signed and the spikes
bipolar.
"""
from __future__ import annotations


class PoissonEncoder:
    """Rate-codes a batch of images chunk by chunk, so the whole train is never held at once."""

    def __init__(self, scale: float = 1.0):
        if scale <= 0:
            raise ValueError(f"PoissonEncoder scale must be positive, got {scale}")
        self.scale = scale

    def __repr__(self):
        return f"PoissonEncoder(scale={self.scale})"

    def prepare(self, xp, images):
        """Per-batch constants: the firing probability |x| * scale and the sign of x (None when
        no pixel is negative, as for MNIST: the spikes are then unipolar)."""
        signed = bool((images < 0).any())
        return xp.abs(images) * self.scale, (xp.sign(images) if signed else None)

    def encode(self, xp, prepared, steps, rng):
        """Spikes for the next ``steps`` time steps: (steps, *images.shape)."""
        probability, sign = prepared
        u = rng.random((steps,) + probability.shape, dtype=probability.dtype)
        spikes = xp.less(u, probability, out=u)       # u < p  <=>  p > u
        if sign is not None:
            spikes *= sign
        return spikes


def poisson_encode(xp, images, steps, rng, scale=1.0):
    """Whole spike train (steps, *images.shape) at once: for tutorials and tests."""
    encoder = PoissonEncoder(scale)
    return encoder.encode(xp, encoder.prepare(xp, images), steps, rng)
