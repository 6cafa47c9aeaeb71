from __future__ import annotations

import numpy as np

from monai_reg_ext.demo.prostate import ProstateRegion, logistic, render_trus


class _Region(ProstateRegion):
    def __init__(self, seed: int):
        rng = np.random.default_rng(seed)
        self.c, self.r = np.zeros(3), np.array([15.0, 12.0, 14.0])
        self.draw_gland(rng.uniform, 10, 0.08, ((0.5, 0.6), (0.5, 0.6), (0.5, 0.6)))
        self.rectum_xy, self.rectum_r = np.array([0.0, -24.0]), 9.0
        self.draw_calcifications(rng, (1, 3), (1.0, 1.5))


def test_region_memberships_and_trus():
    assert logistic(np.array([0.0]))[0] == 0.5
    region = _Region(0)
    assert 1 <= len(region.calc) <= 2 and np.all((region.calc_r >= 1.0) & (region.calc_r <= 1.5))
    axes = [np.linspace(-30, 30, n) for n in (16, 18, 14)]
    p = np.stack(np.meshgrid(*axes, indexing="ij"))
    d_ure = np.hypot(p[0] - region.ure_xy[0], p[1] - region.ure_xy[1])
    d_rec = np.hypot(p[0] - region.rectum_xy[0], p[1] - region.rectum_xy[1])
    m = region.memberships(p, 0.5, 0.9, d_ure, d_rec)
    assert set(m) == {"gland", "capsule", "tz", "urethra", "bladder", "lumen", "wall", "fat", "calc"}
    assert all(v.shape == (16, 18, 14) and v.min() >= 0 and v.max() <= 1 for v in m.values())
    assert region.gland_rho(np.zeros((3, 1)))[0] < 0.5 and m["gland"][8, 9, 7] > 0.9  # the centre is in the gland
    assert np.all(m["tz"] <= m["gland"] + 1e-12)
    echo = 0.5 * m["gland"] + 0.2
    us, fov = render_trus(echo, [4.0, 3.5, 4.5], [8.0, 2.0, 7.0], [0.0, 1.0, 0.0], 120.0, seed=1)
    assert us.shape == echo.shape and fov.any() and np.all(us[~fov] == 0)
