"""The bundle-free pipeline: known affines and smooth fields recovered, multi-modal similarities, errors."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from monai_reg_ext.optimise import normalise_intensity, overlap_fraction, register_images
from monai_reg_ext.spatial import affine_to_ddf, fixed_to_moving_matrix, random_smooth_ddf, warp_image

from .phantoms import blobs, error_mm, grid_affine, grid_world, render, render_regions, true_ddf, world_transform


def _pair(world: np.ndarray, fixed_shape=(40, 40, 40), moving_shape=(44, 42, 38), seed=0):
    """Fixed and moving images of one phantom; moving world point ``world(y)`` shows the fixed content at ``y``."""
    spec = blobs(seed=seed)
    a_fix = grid_affine((2.0, 2.0, 2.0), (-39.0, -39.0, -39.0))
    a_mov = grid_affine((2.2, 2.0, 2.4), (-47.0, -42.0, -44.0), rotation_deg=5.0)
    fixed = render(grid_world(fixed_shape, a_fix), spec)
    inv = np.linalg.inv(world)
    wm = grid_world(moving_shape, a_mov).reshape(3, -1)
    moving = render((inv[:3, :3] @ wm + inv[:3, 3:]).reshape(3, *moving_shape), spec)
    as_t = lambda x: torch.as_tensor(x, dtype=torch.float32)[None, None]  # noqa: E731
    return as_t(moving), as_t(fixed), a_mov, a_fix


def test_recovers_known_affine_on_different_grids():
    """10 degree rotation, 8 mm translation, scale 1.1, moving on its own (rotated, anisotropic) grid: < 0.5 mm."""
    world = world_transform(10.0, (8.0, -3.0, 2.0), 1.1)
    moving, fixed, a_mov, a_fix = _pair(world)
    m = fixed_to_moving_matrix(a_mov, a_fix, 3).float()
    result = register_images(normalise_intensity(moving), normalise_intensity(fixed), m, stages="affine")
    truth = true_ddf(a_fix, fixed.shape[2:], world)
    assert result.theta is not None and result.theta.shape == (1, 3, 4)
    assert torch.allclose(result.ddf, affine_to_ddf(result.theta, fixed.shape[2:]), atol=1e-4)
    assert error_mm(result.ddf[0], truth, a_fix) < 0.5


def test_recovers_known_smooth_field():
    """Moving on the fixed grid, fixed = moving pulled by a smooth field: the field is recovered to < 0.4 voxel."""
    spec = blobs(seed=1)
    a = grid_affine((2.0, 2.0, 2.0), (-39.0, -39.0, -39.0))
    moving = torch.as_tensor(render(grid_world((40, 40, 40), a), spec), dtype=torch.float32)[None, None]
    field = random_smooth_ddf((40, 40, 40), 4.0, 8.0, seed=2)
    fixed = warp_image(moving, field)
    result = register_images(moving, fixed, stages="deformable", initialisation="none")
    inner = (slice(None), slice(None), *[slice(6, 34)] * 3)
    before = float((field[inner]).norm(dim=1).mean())
    after = float((result.ddf - field)[inner].norm(dim=1).mean())
    assert after < 0.4 and after < 0.3 * before, (before, after)
    # the deformable stage's learning rate reaches Adam: one step of lr 1e-3 moves control points by about 1e-3 voxel
    one = register_images(moving, fixed, stages="deformable", initialisation="none", levels=1, iterations=2, lr=1e-3)
    assert 5e-4 < float(one.ddf.abs().max()) < 2.5e-3


def _regions_pair(world: np.ndarray, seed: int = 3):
    """Piecewise-constant regions with unrelated intensities in the two images (a non-monotonic intensity map)."""
    spec = blobs(n=10, seed=seed)
    rng = np.random.default_rng(seed)
    a_fix = grid_affine((2.0, 2.0, 2.0), (-39.0, -39.0, -39.0))
    a_mov = grid_affine((2.2, 2.0, 2.4), (-47.0, -42.0, -44.0), rotation_deg=5.0)
    inv = np.linalg.inv(world)
    wm = grid_world((44, 42, 38), a_mov).reshape(3, -1)
    dark = np.array([0.0])  # a dark background in both, as in MR and CT
    mov_int, fix_int = np.concatenate([dark, rng.uniform(0.2, 1, 10)]), np.concatenate([dark, rng.uniform(0.2, 1, 10)])
    moving = render_regions((inv[:3, :3] @ wm + inv[:3, 3:]).reshape(3, 44, 42, 38), spec, mov_int)
    fixed = render_regions(grid_world((40, 40, 40), a_fix), spec, fix_int)
    as_t = lambda x: torch.as_tensor(x, dtype=torch.float32)[None, None]  # noqa: E731
    return as_t(moving), as_t(fixed), a_mov, a_fix


def test_mutual_information_beats_lncc_on_remapped_contrast():
    """Fixed intensities through a non-monotonic map (the brightest blobs turn dark again): MI < 0.6 mm and < LNCC."""
    world = world_transform(6.0, (6.0, 4.0, -3.0), 1.0)
    moving, fixed, a_mov, a_fix = _pair(world, seed=3)
    fixed = torch.sin(np.pi * (fixed / fixed.max()).clamp(0, 1) * 1.5) ** 2
    m = fixed_to_moving_matrix(a_mov, a_fix, 3).float()
    truth = true_ddf(a_fix, fixed.shape[2:], world)
    mov, fix = normalise_intensity(moving), normalise_intensity(fixed)
    errors = {}
    for name in ("lncc", "mi"):
        out = register_images(mov, fix, m, stages="affine", similarity=name, initialisation="none")
        errors[name] = error_mm(out.ddf[0], truth, a_fix)
    assert errors["mi"] < 0.6 and errors["mi"] < errors["lncc"], errors


def test_mind_on_unrelated_region_intensities():
    """Regions with unrelated intensities in the two images (8 mm apart before registration): MIND < 1.5 mm."""
    world = world_transform(6.0, (6.0, 4.0, -3.0), 1.0)
    moving, fixed, a_mov, a_fix = _regions_pair(world)
    m = fixed_to_moving_matrix(a_mov, a_fix, 3).float()
    truth = true_ddf(a_fix, fixed.shape[2:], world)
    assert error_mm(torch.zeros_like(truth), truth, a_fix) > 7.0
    out = register_images(
        normalise_intensity(moving), normalise_intensity(fixed), m, stages="affine", similarity="mind",
        initialisation="none", affine_levels=(2, 1),
    )  # fmt: skip
    assert error_mm(out.ddf[0], truth, a_fix) < 1.5


def test_no_overlap_is_refused():
    moving = torch.rand(1, 1, 16, 16, 16)
    far = torch.eye(4, dtype=torch.float64)
    far[:3, 3] = 5000.0
    with pytest.raises(ValueError, match="do not overlap"):
        register_images(moving, moving.clone(), far, initialisation="none")
    assert overlap_fraction(torch.zeros(1, 3, 16, 16, 16), (16, 16, 16), None) == 1.0


def test_bad_stages_and_transform():
    x = torch.rand(1, 1, 16, 16, 16)
    with pytest.raises(ValueError, match="stages"):
        register_images(x, x, stages="rigid")
    with pytest.raises(ValueError, match="transform"):
        register_images(x, x, transform="affine")


def test_2d_affine():
    spec = blobs(seed=4, ndim=2)
    a = grid_affine((1.5, 1.5), (-30.0, -30.0))
    world = world_transform(8.0, (5.0, -4.0), 1.05, ndim=2)
    fixed = torch.as_tensor(render(grid_world((41, 41), a), spec), dtype=torch.float32)[None, None]
    inv = np.linalg.inv(world)
    wm = grid_world((41, 41), a).reshape(2, -1)
    moving = render((inv[:2, :2] @ wm + inv[:2, 2:]).reshape(2, 41, 41), spec)
    moving = torch.as_tensor(moving, dtype=torch.float32)[None, None]
    out = register_images(moving, fixed, stages="affine")
    assert error_mm(out.ddf[0], true_ddf(a, (41, 41), world), a, margin=5) < 0.5
