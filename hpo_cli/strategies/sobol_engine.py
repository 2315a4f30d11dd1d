"""Scrambled Sobol points without importing :mod:`scipy.stats` (about a second at start-up).

The points equal those of ``scipy.stats.qmc.Sobol(d, scramble=..., rng=...)`` bit for bit, so a
run started before this engine existed draws the same trials when resumed. Three pieces:

* **Direction numbers.** Joe and Kuo's primitive polynomials and initial numbers, read from the
  table scipy installs (``scipy/stats/_sobol_direction_numbers.npz``, loaded with numpy only).
  Row 0 is the van der Corput sequence; row ``d`` extends its ``m`` initial numbers with the
  Bratley-Fox recurrence of its degree-``m`` polynomial ``x^m + a_1 x^(m-1) + ... + a_(m-1) x + 1``:
  ``v_j = v_(j-m) xor 2^m v_(j-m) xor (xor over k < m with a_k = 1 of 2^k v_(j-k))``.
  Column ``j`` is then shifted left by ``bits - 1 - j``.
* **Scrambling** (Owen's linear matrix scramble with a digital shift): a random unit lower
  triangular binary matrix per dimension multiplies each direction number's digits, most
  significant digit first, and a random ``bits``-digit shift is xor-ed onto every point. The
  random digits come from the same stream, in the same order, as scipy's: a child of the given
  generator (``SeedSequence.spawn``), the shift's ``d x bits`` digits, then ``d x bits x bits``
  matrix entries.
* **Points in Gray-code order**: point ``i`` is the shift xor-ed with the direction numbers of
  the set digits of ``i xor (i >> 1)``, so any block of points is computed directly.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path

import numpy as np

MAX_DIM = 21201
DEFAULT_BITS = 30


@cache
def direction_number_table() -> tuple[np.ndarray, np.ndarray]:
    """Joe and Kuo's polynomials and initial direction numbers, as scipy installs them: read once
    per process (decompressing the file takes ~12 ms, and GP-BO builds an engine per suggestion),
    read-only."""
    import scipy  # light: the package root only

    with np.load(Path(scipy.__file__).parent / "stats" / "_sobol_direction_numbers.npz") as table:
        poly, vinit = table["poly"], table["vinit"]
    poly.flags.writeable = vinit.flags.writeable = False
    return poly, vinit


def direction_numbers(d: int, bits: int = DEFAULT_BITS) -> np.ndarray:
    """Unscrambled direction numbers, shape ``(d, bits)``; row ``k`` generates coordinate ``k``."""
    if not 0 <= d <= MAX_DIM:
        raise ValueError(f"a Sobol sequence has 0 to {MAX_DIM} dimensions, not {d}")
    v = np.zeros((d, bits), dtype=np.uint64)
    if d == 0:
        return v
    poly, vinit = direction_number_table()
    v[0, :] = 1
    for row in range(1, d):
        p = int(poly[row])
        m = p.bit_length() - 1
        if m > bits:
            raise ValueError(f"dimension {row + 1} needs at least {m} bits, not {bits}")
        v[row, :m] = vinit[row, :m]
        taps = [k for k in range(1, m) if (p >> (m - k)) & 1]  # a_k = 1
        for j in range(m, bits):
            value = int(v[row, j - m]) ^ (int(v[row, j - m]) << m)
            for k in taps:
                value ^= int(v[row, j - k]) << k
            v[row, j] = value
    return v << np.arange(bits - 1, -1, -1, dtype=np.uint64)


def scramble_digits(v: np.ndarray, rng: np.random.Generator, bits: int) -> tuple[np.ndarray, np.ndarray]:
    """``(scrambled direction numbers, digital shift)`` for unscrambled ``v``, drawn from ``rng``."""
    d = v.shape[0]
    digit_type = np.uint32 if bits <= 32 else np.uint64
    shift_digits = rng.integers(0, 2, size=(d, bits), dtype=digit_type).astype(np.uint64)
    shift = (shift_digits << np.arange(bits, dtype=np.uint64)).sum(axis=1, dtype=np.uint64)
    matrices = np.tril(rng.integers(0, 2, size=(d, bits, bits), dtype=digit_type)).astype(np.int64)
    matrices[:, np.arange(bits), np.arange(bits)] = 1
    place = np.arange(bits - 1, -1, -1, dtype=np.uint64)  # digit k (most significant first)
    digits = ((v[:, :, None] >> place) & np.uint64(1)).astype(np.int64)  # (d, column, k)
    mixed = np.einsum("dpk,djk->djp", matrices, digits) % 2
    scrambled = (mixed.astype(np.uint64) << place).sum(axis=2, dtype=np.uint64)
    return scrambled, shift


def _engine_stream(rng: int | np.random.Generator | None) -> np.random.Generator:
    """The generator scipy's engine draws from: a spawned child of the given one (or of the seed's)."""
    parent = rng if isinstance(rng, np.random.Generator) else np.random.default_rng(rng)
    return parent.spawn(1)[0]


class ScrambledSobol:
    """A Sobol sequence in ``d`` dimensions, served in order by :meth:`random`."""

    def __init__(
        self,
        d: int,
        *,
        scramble: bool = True,
        rng: int | np.random.Generator | None = None,
        bits: int = DEFAULT_BITS,
    ) -> None:
        if not 1 <= bits <= 64:
            raise ValueError(f"bits must be 1 to 64, not {bits}")
        self.d = d
        self.bits = bits
        self.max_points = 2**bits
        self.num_generated = 0
        plain = direction_numbers(d, bits)
        if scramble:
            self._v, self._shift = scramble_digits(plain, _engine_stream(rng), bits)
        else:
            self._v, self._shift = plain, np.zeros(d, dtype=np.uint64)

    def points(self, start: int, n: int) -> np.ndarray:
        """Points ``start`` to ``start + n - 1`` of the sequence, shape ``(n, d)``, in [0, 1)."""
        if start + n > self.max_points:
            raise ValueError(f"a {self.bits}-bit Sobol sequence has {self.max_points} points, not {start + n}")
        index = np.arange(start, start + n, dtype=np.uint64)
        gray = index ^ (index >> np.uint64(1))
        digits = np.broadcast_to(self._shift, (n, self.d)).copy()
        for column in range(self.bits):
            has_digit = ((gray >> np.uint64(column)) & np.uint64(1)).astype(bool)
            digits[has_digit] ^= self._v[:, column]
        return digits.astype(np.float64) * (1.0 / 2**self.bits)

    def random(self, n: int = 1) -> np.ndarray:
        """The next ``n`` points."""
        out = self.points(self.num_generated, n)
        self.num_generated += n
        return out

    def random_base2(self, m: int) -> np.ndarray:
        """The next ``2**m`` points."""
        return self.random(2**m)
