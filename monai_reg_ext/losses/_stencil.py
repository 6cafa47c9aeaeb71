"""Finite-difference stencils of a DDF with a hand-written adjoint (private helper of :mod:`.deform`).

MONAI's ``spatial_gradient_squared`` / ``spatial_gradient`` slice the field once per stencil point; autograd then
allocates a zero tensor the size of the whole field, and copies into it, for every slice in the backward pass. For an
optimiser that evaluates the bending energy of a full-resolution DDF at every iteration that backward dominated the
step (88x104x88, one CPU thread: 250-300 ms for MONAI's bending energy forward + backward, ~46 ms of it forward).

Here each stencil is a scale and a list of ``(offset, coefficient)`` points, applied by shifted multiply-adds on the
grid cropped by one voxel along every axis (MONAI's output grid), and the energy ``sum_t w_t phi(S_t u)`` is
accumulated without keeping the stencil outputs; the backward recomputes each stencil and applies its adjoint the same
way, into one zero tensor (:class:`_StencilEnergy`). The values are MONAI's stencils, term by term
(``tests/losses/test_deform.py``: values and gradients against MONAI's classes; ``scripts/bench_regularisers.py``:
bending energy / gradient norm 2.9x / 2.2x faster forward + backward at 88x104x88, 3.6x / 2.6x at 64x80x64, one CPU
thread). The backward is not itself differentiable
(``once_differentiable``: no double backward through a regulariser).
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence

import torch
from torch.autograd.function import once_differentiable

__all__ = ["difference_pairs", "first_difference_stencils", "second_difference_stencils", "stencil_energy"]

#: one stencil: ``(scale, ((offset per axis, coefficient), ...))``, offsets in ``{-1, 0, 1}``, small integer
#: coefficients: the sum is formed first and scaled after it, so a constant field gives exactly 0 (as MONAI's)
Stencil = tuple[float, tuple[tuple[tuple[int, ...], float], ...]]


def difference_pairs(ndim: int) -> list[tuple[int, int]]:
    """The axis pairs ``(i, j)``, ``i <= j``, of the second derivatives, in the channel order of
    :func:`second_differences`: ``(0, 0), (0, 1), ..., (1, 1), ...``."""
    return [(i, j) for i in range(ndim) for j in range(i, ndim)]


def _window(x: torch.Tensor, offset: tuple[int, ...]) -> torch.Tensor:
    """The view of ``x`` ``(N, *S)`` at ``p + 1 + offset`` for every ``p`` of the cropped grid ``S - 2``."""
    return x[(slice(None), *(slice(1 + o, int(n) - 1 + o) for o, n in zip(offset, x.shape[1:])))]


class _StencilEnergy(torch.autograd.Function):
    """``E[:, p] = sum_t weight_t * phi((S_t u)[:, p])`` with ``phi(x) = x^2`` (or ``|x|``) and
    ``(S_t u)[:, p] = scale_t * sum_(o, c) c * u[:, p + 1 + o]``; the backward applies the adjoint stencils.

    Nothing of the size of ``u`` times the stencil count is kept: each stencil output is recomputed in the backward
    pass into one reused buffer (the stencils are cheap; large fresh allocations are not)."""

    @staticmethod
    def forward(ctx, u: torch.Tensor, stencils: tuple[Stencil, ...], weights: tuple[float, ...], l1: bool):  # type: ignore[override]
        ctx.save_for_backward(u)
        ctx.stencils, ctx.weights, ctx.l1 = stencils, weights, l1
        energy = u.new_zeros(u.shape[0], *(int(s) - 2 for s in u.shape[1:]))
        buffer = torch.empty_like(energy)
        for (scale, points), weight in zip(stencils, weights):
            _stencil_into(buffer, u, points)  # the unscaled sum: the scale is folded into the weight
            if l1:
                energy.add_(buffer.abs_(), alpha=weight * abs(scale))
            else:
                energy.addcmul_(buffer, buffer, value=weight * scale * scale)
        return energy

    @staticmethod
    @once_differentiable
    def backward(ctx, grad: torch.Tensor):  # type: ignore[override]
        (u,) = ctx.saved_tensors
        grad_u = torch.zeros_like(u)
        buffer = torch.empty_like(grad)
        for (scale, points), weight in zip(ctx.stencils, ctx.weights):
            _stencil_into(buffer, u, points)  # d phi / d x, times the incoming gradient
            if ctx.l1:
                buffer.sign_().mul_(grad).mul_(weight * abs(scale))
            else:
                buffer.mul_(grad).mul_(2.0 * weight * scale * scale)
            for offset, c in points:
                _window(grad_u, offset).add_(buffer, alpha=c)
        return grad_u, None, None, None


def _stencil_into(out: torch.Tensor, u: torch.Tensor, points: tuple[tuple[tuple[int, ...], float], ...]) -> None:
    """``out = sum_(o, c) c * u[:, p + 1 + o]`` (``out`` on the cropped grid; the stencil's scale not applied)."""
    (first, c0), *rest = points
    torch.mul(_window(u, first), c0, out=out)
    for offset, c in rest:
        out.add_(_window(u, offset), alpha=c)


def _unit(ndim: int, axis: int, step: int) -> tuple[int, ...]:
    return tuple(step if a == axis else 0 for a in range(ndim))


def stencil_energy(u: torch.Tensor, stencils: Sequence[Stencil], weights: Sequence[float], l1: bool = False):
    """``sum_t weights[t] * phi(S_t u)`` per component of ``u`` ``(B, D, *S)``, ``phi`` the square (or ``|.|`` with
    ``l1``): ``(B, D, *(S - 2))`` on the grid cropped by one voxel along every axis."""
    b, d = u.shape[:2]
    energy = _StencilEnergy.apply(u.reshape(b * d, *u.shape[2:]), tuple(stencils), tuple(map(float, weights)), l1)
    return energy.reshape(b, d, *energy.shape[1:])


def second_difference_stencils(ndim: int, spacing: Sequence[float] | None = None) -> tuple[list[Stencil], list[float]]:
    """MONAI's compact second-derivative stencils and the bending-energy weight of each (1 pure, 2 mixed).

    Stencil ``t`` is along axes ``difference_pairs(ndim)[t] = (i, j)``: ``u[+1] - 2 u + u[-1]`` along ``i`` for
    ``i == j``, ``(u[+1, +1] - u[+1, -1] - u[-1, +1] + u[-1, -1]) / 4`` along ``(i, j)`` otherwise (MONAI's
    ``spatial_gradient_squared``); divided by ``spacing[i] * spacing[j]`` when a spacing (mm) is given.
    """
    stencils, weights = [], []
    for i, j in difference_pairs(ndim):
        scale = 1.0 if spacing is None else 1.0 / (float(spacing[i]) * float(spacing[j]))
        if i == j:
            stencil = (scale, ((_unit(ndim, i, 1), 1.0), (_unit(ndim, i, -1), 1.0), (_unit(ndim, i, 0), -2.0)))
        else:
            points = tuple(
                (tuple(si if a == i else sj if a == j else 0 for a in range(ndim)), float(si * sj))
                for si, sj in itertools.product((1, -1), repeat=2)
            )
            stencil = (scale / 4.0, points)
        stencils.append(stencil)
        weights.append(1.0 if i == j else 2.0)
    return stencils, weights


def first_difference_stencils(ndim: int, spacing: Sequence[float] | None = None) -> list[Stencil]:
    """Central differences ``(u[+1] - u[-1]) / 2`` along each axis ``i`` (MONAI's ``spatial_gradient``), divided by
    ``spacing[i]`` when a spacing (mm) is given."""
    out = []
    for i in range(ndim):
        h = 0.5 if spacing is None else 0.5 / float(spacing[i])
        out.append((h, ((_unit(ndim, i, 1), 1.0), (_unit(ndim, i, -1), -1.0))))
    return out
