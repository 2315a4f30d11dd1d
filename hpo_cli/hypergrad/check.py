"""Central finite differences: the reference every hypergradient is checked against."""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor


def finite_difference(f: Callable[[Tensor], float], h: Tensor, eps: float = 1e-5) -> Tensor:
    """(f(h + ε_j e_j) − f(h − ε_j e_j)) / 2ε_j for every component j; ε_j = eps·max(1, |h_j|).

    h: (m,) -> (m,). Use float64: the error is O(ε²) truncation plus O(machine ε / ε) rounding.
    """
    h = h.detach()
    out = torch.empty_like(h)
    for j in range(h.numel()):
        step = eps * max(1.0, abs(float(h[j])))
        e = torch.zeros_like(h)
        e[j] = step
        out[j] = (f(h + e) - f(h - e)) / (2 * step)
    return out


def relative_error(g: Tensor, reference: Tensor) -> float:
    """‖g − reference‖ / ‖reference‖ (‖g − reference‖ itself when the reference is 0)."""
    diff = float(torch.linalg.vector_norm(g - reference))
    scale = float(torch.linalg.vector_norm(reference))
    return diff / scale if scale > 0 else diff


def componentwise_error(g: Tensor, reference: Tensor) -> Tensor:
    """|g_j − ref_j| / max(|ref_j|, 1e-12·‖ref‖∞), shape (m,)."""
    floor = max(float(reference.abs().max()) * 1e-12, 1e-300)
    return (g - reference).abs() / reference.abs().clamp_min(floor)
