"""Tests of the ultrasound-like simulator (monai_reg_ext.demo.ultrasound)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from monai_reg_ext.demo.ultrasound import probe_geometry, simulate_ultrasound


def _uniform_2d(value: float = 0.5) -> np.ndarray:
    return np.full((96, 96), value)


def test_outputs_shape_range_and_zero_outside_fov_2d() -> None:
    img, fov = simulate_ultrasound(_uniform_2d(), [0.5, 0.5], [0, 48], [1, 0], fan_angle_deg=60.0, seed=3)
    assert img.shape == fov.shape == (96, 96)
    assert img.dtype == np.float32 and fov.dtype == bool
    assert img.min() >= 0.0 and img.max() <= 1.0
    assert np.all(img[~fov] == 0.0)
    assert img[fov].mean() > 0.2
    # the 60 degree sector from (0, 48) pointing along axis 0: (90, 48) is inside, (10, 5) is outside
    assert fov[90, 48] and not fov[10, 5]
    # lateral half-angle at (50, 48 + 50 tan(30 deg)) lies on the edge: just inside vs just outside
    edge = 50 * np.tan(np.radians(30.0))
    assert fov[50, int(48 + edge - 2)] and not fov[50, int(48 + edge + 2)]


def test_deterministic_per_seed_and_different_across_seeds() -> None:
    args = (_uniform_2d(), [0.5, 0.5], [0, 48], [1, 0])
    a, _ = simulate_ultrasound(*args, seed=7)
    b, _ = simulate_ultrasound(*args, seed=7)
    c, _ = simulate_ultrasound(*args, seed=8)
    np.testing.assert_array_equal(a, b)
    assert np.abs(a - c).mean() > 0.05


def test_attenuation_darkens_the_deep_half_of_a_uniform_medium() -> None:
    echo = np.full((128, 64), 0.5)
    args = (echo, [0.5, 0.5], [0, 32], [1, 0])
    img, fov = simulate_ultrasound(*args, fan_angle_deg=40.0, attenuation_db_per_mm=0.2)
    assert img[64:][fov[64:]].mean() < 0.75 * img[:64][fov[:64]].mean()  # deep half darker
    depth = probe_geometry(echo.shape, [0.5, 0.5], [0, 32], [1, 0], fan_angle_deg=40.0)["depth"]
    shallow = img[fov & (depth > 10) & (depth < 20)].mean()
    deep = img[fov & (depth > 40) & (depth < 50)].mean()
    # 0.2 dB/mm amplitude over 30 mm: 10 ** (-6 / 20) = 0.50 (a little more: the brightest speckle is clipped)
    assert deep / shallow == pytest.approx(10 ** (-0.2 * 30 / 20), rel=0.15)
    flat, fov0 = simulate_ultrasound(*args, fan_angle_deg=40.0, attenuation_db_per_mm=0.0)
    assert flat[64:][fov0[64:]].mean() / flat[:64][fov0[:64]].mean() == pytest.approx(1.0, abs=0.1)


def test_shadow_behind_a_bright_reflector_and_bright_boundary() -> None:
    echo = np.full((120, 120), 0.4)
    echo[40:46, 50:70] = 2.0  # a strong reflector (calcification) in front of the probe
    img, fov = simulate_ultrasound(echo, [0.5, 0.5], [0, 60], [1, 0], fan_angle_deg=80.0, seed=1, boundary_strength=2.0)
    behind = img[70:100, 56:64].mean()  # same depth, straight behind the reflector
    beside = img[70:100, 86:94].mean()  # same depth, off to the side (no reflector on the ray)
    assert behind < 0.5 * beside
    # the reflector's probe-facing boundary is among the brightest pixels
    assert img[39:42, 52:68].mean() > 2 * img[20:30, 52:68].mean()


def test_3d_cone_with_probe_outside_the_volume_and_torch_io() -> None:
    echo = torch.full((24, 32, 32), 0.5)
    img, fov = simulate_ultrasound(echo, [1.0, 1.0, 1.0], [12, 16, -6], [0, 0, 1], fan_angle_deg=90.0, seed=2)
    assert isinstance(img, torch.Tensor) and isinstance(fov, torch.Tensor)
    assert img.shape == fov.shape == (24, 32, 32)
    assert bool(fov[12, 16, 20]) and not bool(fov[0, 0, 0])  # on axis vs far corner (outside the 45 deg cone)
    assert float(img[~fov].abs().max()) == 0.0
    assert 0.0 < float(img[fov].mean()) <= 1.0
    ref, _ = simulate_ultrasound(echo.numpy(), [1.0, 1.0, 1.0], [12, 16, -6], [0, 0, 1], fan_angle_deg=90.0, seed=2)
    np.testing.assert_array_equal(img.numpy(), ref)


def test_depth_limits_the_fov_and_geometry_values() -> None:
    geom = probe_geometry((50, 50), [1.0, 2.0], [0, 25], [1, 0], fan_angle_deg=90.0, depth_mm=30.0)
    depth = geom["depth"]
    assert depth[10, 25] == pytest.approx(10.0)
    assert depth[0, 30] == pytest.approx(10.0)  # 5 voxels of 2 mm along axis 1
    assert geom["fov"][29, 25] and not geom["fov"][31, 25]
    _, fov = simulate_ultrasound(np.ones((50, 50)), [1.0, 2.0], [0, 25], [1, 0], fan_angle_deg=90.0, depth_mm=30.0)
    np.testing.assert_array_equal(fov, geom["fov"])


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"echogenicity": np.ones(10)}, "2D"),
        ({"echogenicity": -np.ones((8, 8))}, "non-negative"),
        ({"spacing": [1.0]}, "spacing must have 2"),
        ({"spacing": [1.0, 0.0]}, "spacing must be positive"),
        ({"probe_origin": [0, 0, 0]}, "probe_origin must have 2"),
        ({"probe_direction": [0, 0]}, "non-zero"),
        ({"fan_angle_deg": 180.0}, "fan_angle_deg"),
        ({"depth_mm": -1.0}, "depth_mm"),
        ({"attenuation_db_per_mm": -0.1}, "attenuation_db_per_mm"),
        ({"speckle_size_mm": 0.0}, "speckle_size_mm"),
    ],
)
def test_bad_input_errors(kwargs: dict, match: str) -> None:
    args = {"echogenicity": np.ones((8, 8)), "spacing": [1.0, 1.0], "probe_origin": [0, 4], "probe_direction": [1, 0]}
    args.update(kwargs)
    with pytest.raises(ValueError, match=match):
        simulate_ultrasound(**args)
