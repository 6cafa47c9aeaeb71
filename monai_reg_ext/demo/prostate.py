"""A random analytic prostate region in world mm: the anatomy of the synthetic prostate ultrasound / MR demo data.

Used by ``bundles/paired_mrus_prostate`` (MR and a probe-deformed TRUS of each case) and
``bundles/unpaired_us_prostate_cv`` (TRUS-like volumes of many subjects). :class:`ProstateRegion` holds a gland (an
ellipsoid perturbed by a few angular harmonics) with a transition zone, a urethra, a capsule, the periprostatic fat,
the bladder, the rectum and small calcifications; a maker's subclass draws the centre, radii and rectum from its own
ranges (:meth:`ProstateRegion.draw_gland`, :meth:`ProstateRegion.draw_calcifications`) and renders the soft
memberships of :meth:`ProstateRegion.memberships`; :func:`render_trus` renders a transrectal ultrasound of them.

Axes: 0 lateral, 1 posterior -> anterior, 2 caudal -> cranial; points are arrays ``(3, ...)`` in mm.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import numpy as np

from .ultrasound import simulate_ultrasound

__all__ = ["logistic", "ProstateRegion", "render_trus"]


def logistic(x: np.ndarray) -> np.ndarray:
    """``1 / (1 + exp(-x))``, computed as ``(1 + tanh(x / 2)) / 2``."""
    return 0.5 * (1.0 + np.tanh(0.5 * x))


class ProstateRegion:
    """Gland, transition zone, urethra, bladder, rectum and calcifications of one random case.

    Attributes set by the subclass: ``c`` (gland centre), ``r`` (gland radii), ``rectum_xy`` (rectum axis, axes 0
    and 1) and ``rectum_r`` (its radius); by :meth:`draw_gland`: ``rot``, ``shape_coef``, ``shape_phase``, ``tz_c``,
    ``tz_r``, ``ure_xy``, ``bladder_c``, ``bladder_r``; by :meth:`draw_calcifications`: ``calc``, ``calc_r``.
    """

    c: np.ndarray
    r: np.ndarray
    rectum_xy: np.ndarray
    rectum_r: float

    def draw_gland(
        self,
        u: Callable[..., float],
        max_angle_deg: float,
        lobulation: float,
        tz_fractions: Sequence[tuple[float, float]],
    ) -> None:
        """Draw (with ``u = rng.uniform``, in this order) the gland's rotation about axis 2 (within
        ``+-max_angle_deg``), its 4 shape harmonics (amplitudes within ``+-lobulation``), the transition zone's radii
        (fractions of the gland's within ``tz_fractions``, one range per axis) and the bladder's position and radii;
        ``c`` and ``r`` must be set."""
        a = math.radians(u(-max_angle_deg, max_angle_deg))
        self.rot = np.array([[math.cos(a), -math.sin(a), 0], [math.sin(a), math.cos(a), 0], [0, 0, 1]])
        self.shape_coef = u(-lobulation, lobulation, size=4)
        self.shape_phase = u(0, 2 * math.pi, size=4)
        self.tz_c = self.c + np.array([0, 0.25 * self.r[1], 0.15 * self.r[2]])
        self.tz_r = self.r * np.array([u(*tz_fractions[0]), u(*tz_fractions[1]), u(*tz_fractions[2])])
        self.ure_xy = self.c[:2] + np.array([0, 0.2 * self.r[1]])
        self.bladder_c = self.c + np.array([0, 4.0, self.r[2] + u(9, 13)])
        self.bladder_r = np.array([u(18, 24), u(14, 18), u(10, 13)])

    def draw_calcifications(
        self, rng: np.random.Generator, count: tuple[int, int], radius_mm: tuple[float, float]
    ) -> None:
        """Draw ``rng.integers(*count)`` calcifications at the transition zone's border (``calc``, ``(N, 3)`` mm)
        and their radii within ``radius_mm`` (``calc_r``); :meth:`draw_gland` must have run."""
        n_calc = int(rng.integers(*count))
        dirs = rng.normal(size=(n_calc, 3))
        dirs /= np.maximum(np.linalg.norm(dirs, axis=1, keepdims=True), 1e-9)
        self.calc = self.tz_c + dirs * self.tz_r * rng.uniform(0.8, 1.0, size=(n_calc, 1))
        self.calc_r = rng.uniform(*radius_mm, size=n_calc)

    def gland_rho(self, p: np.ndarray) -> np.ndarray:
        """Normalised radius of the (perturbed) gland ellipsoid at points ``p``: < 1 inside."""
        bc = (1,) * (p.ndim - 1)
        q = np.tensordot(self.rot.T, p - self.c.reshape(3, *bc), axes=1) / self.r.reshape(3, *bc)
        rho = np.sqrt((q**2).sum(0))
        theta = np.arctan2(q[1], q[0])
        cz = q[2] / np.maximum(rho, 1e-6)
        k, ph = self.shape_coef, self.shape_phase
        pert = k[0] * np.cos(2 * theta + ph[0]) + k[1] * np.cos(3 * theta + ph[1]) + k[2] * cz + k[3] * cz**2
        flat = np.where(q[1] < 0, 0.12 * np.clip(-q[1], 0, 1) ** 2, 0.0)  # flatter posterior surface
        return rho * (1 + flat) / (1 + pert)

    def memberships(
        self, p: np.ndarray, edge_mm: float, capsule_mm: float, d_urethra: np.ndarray, d_rectum: np.ndarray
    ) -> dict[str, np.ndarray]:
        """Soft memberships in ``[0, 1]`` at points ``p`` ``(3, ...)``.

        Args:
            p: world points (mm).
            edge_mm: width of the logistic edges.
            capsule_mm: width of the capsule around the gland's surface.
            d_urethra, d_rectum: distances (mm) of ``p`` from the urethra's and the rectum's axes.

        Returns:
            ``gland``, ``capsule``, ``tz`` (inside the gland), ``urethra`` (its cross-section only, not cut to the
            gland), ``bladder``, ``lumen`` and ``wall`` of the rectum, ``fat`` and ``calc``.
        """
        bc = (1,) * (p.ndim - 1)
        w = edge_mm
        rho = self.gland_rho(p)
        gland = logistic((1 - rho) * self.r.min() / w)
        capsule = np.exp(-(((rho - 1) * self.r.min() / capsule_mm) ** 2))
        tz_rho = np.sqrt((((p - self.tz_c.reshape(3, *bc)) / self.tz_r.reshape(3, *bc)) ** 2).sum(0))
        tz = logistic((1 - tz_rho) * self.tz_r.min() / w) * gland
        b_rho = np.sqrt((((p - self.bladder_c.reshape(3, *bc)) / self.bladder_r.reshape(3, *bc)) ** 2).sum(0))
        bladder = logistic((1 - b_rho) * self.bladder_r.min() / w) * (1 - gland)
        lumen = logistic((self.rectum_r - 2.5 - d_rectum) / w)
        wall = logistic((self.rectum_r - d_rectum) / w) - lumen
        fat = np.clip(
            logistic((1.35 - rho) * self.r.min() / w) * (1 - gland) * (1 - bladder) * (1 - lumen - wall), 0, 1
        )
        calc = np.zeros_like(rho)
        for c, r in zip(self.calc, self.calc_r):
            d = np.sqrt(((p - c.reshape(3, *bc)) ** 2).sum(0))
            calc = np.maximum(calc, logistic((r - d) / 0.3))
        urethra = logistic((1.6 - d_urethra) / w)
        return {
            "gland": gland,
            "capsule": capsule,
            "tz": tz,
            "urethra": urethra,
            "bladder": bladder,
            "lumen": lumen,
            "wall": wall,
            "fat": fat,
            "calc": calc,
        }


def render_trus(
    echogenicity: np.ndarray,
    spacing: Sequence[float],
    probe_origin: Sequence[float],
    probe_direction: Sequence[float],
    fan_angle_deg: float,
    seed: int,
) -> tuple[np.ndarray, np.ndarray]:
    """The demo data's transrectal ultrasound of an echogenicity map: :func:`monai_reg_ext.demo.ultrasound.
    simulate_ultrasound` with 0.03 dB/mm attenuation, 1.5 mm speckle, boundary strength 1 and shadow strength 0.4
    (arguments as there); returns ``(image, field of view)``."""
    return simulate_ultrasound(
        echogenicity,
        spacing=spacing,
        probe_origin=probe_origin,
        probe_direction=probe_direction,
        fan_angle_deg=fan_angle_deg,
        attenuation_db_per_mm=0.03,
        speckle_size_mm=1.5,
        boundary_strength=1.0,
        shadow_strength=0.4,
        seed=seed,
    )
