"""What :func:`monai_reg_ext.register` returns, and how it is written to files."""

from __future__ import annotations

import csv
import io
import os
import tempfile
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from monai.data import MetaTensor

from ..io.atomic import atomic_write_text, make_folder, write_error
from ..spatial.resample import affine_nd

__all__ = ["RegistrationResult", "minmax", "write_metric_tables", "clear_outputs", "csv_text", "OUTPUT_FILES"]

OUTPUT_FILES = (
    "warped_moving.nii.gz",
    "ddf.nii.gz",
    "metrics.csv",
    "warped_moving_label.nii.gz",
    "registration.png",
    "affine.tfm",
    "inverse_ddf.nii.gz",
)
"""Every file name :meth:`RegistrationResult.save` may write."""


def _check_orthogonal(affine: np.ndarray, what: str = "fixed image") -> None:
    """Refuse a voxel-to-world affine with shear (non-orthogonal voxel axes); ``what`` names the image."""
    nd = affine.shape[0] - 1
    lin = affine[:nd, :nd]
    norms = np.linalg.norm(lin, axis=0)
    gram = (lin / norms).T @ (lin / norms)
    if not np.allclose(gram, np.eye(nd), atol=1e-4):
        angle = float(np.degrees(np.arcsin(np.clip(np.abs(gram - np.eye(nd)).max(), 0.0, 1.0))))
        raise ValueError(
            f"{what}: its voxel axes are not orthogonal (a sheared grid, e.g. CT gantry tilt; axes at "
            f"{angle:.2f} degrees from perpendicular); ITK displacement fields and transform files cannot carry a "
            "shear, so ddf.nii.gz would not overlay it: resample the fixed image onto an orthogonal grid first."
        )


def minmax(x: torch.Tensor) -> torch.Tensor:
    """``x`` scaled to [0, 1] by its minimum and maximum (zeros for a constant image)."""
    lo, hi = x.min(), x.max()
    return (x - lo) / (hi - lo) if hi > lo else torch.zeros_like(x)


@dataclass
class RegistrationResult:
    """What :func:`register` returns.

    Attributes:
        warped_image: warped moving image ``(C, *S_fixed)`` in the moving image's intensities, fixed affine.
        ddf: ``(D, *S_fixed)`` in voxels of the fixed native grid (pull; ``docs/conventions.md``).
        fixed: the fixed image ``(C, *S_fixed)``.
        moving_on_fixed: the moving image resampled (not registered) onto the fixed grid.
        warped_label: warped moving label ``(L, *S_fixed)``, binarised at 0.5, or None.
        metrics: per-pair figures (Dice per label before/after, folding fraction, SDlogJ, TRE in mm...).
        seconds: wall time of the network part (resampling, forward, instance optimisation when asked, DDF resize,
            warp).
        input_paths: the input files (images, labels, landmarks), which :meth:`save` never overwrites.
        theta: ``(D, D + 1)`` the affine part of the registration on fixed voxel indices (origin at voxel 0; maps a
            fixed voxel to the moving position in the fixed voxel frame), when an affine stage ran, else None.
        inverse_ddf: ``(D, *S_fixed)`` inverse of ``ddf`` in fixed voxels (``compose_ddf(ddf, inverse_ddf) ~ 0``)
            when asked for (``inverse=True``), else None.
    """

    warped_image: MetaTensor
    ddf: torch.Tensor
    fixed: MetaTensor
    moving_on_fixed: MetaTensor
    warped_label: MetaTensor | None = None
    metrics: dict[str, float] = field(default_factory=dict)
    seconds: float = 0.0
    input_paths: tuple[str, ...] = ()
    theta: torch.Tensor | None = None
    inverse_ddf: torch.Tensor | None = None

    @property
    def fixed_affine(self) -> np.ndarray:
        """The fixed image's voxel-to-world (RAS) affine, ``(D+1, D+1)``, which every output carries.

        2D images read from NIfTI carry a 4x4 affine; it is reduced to the 3x3 of their two spatial axes.
        """
        return affine_nd(self.fixed.affine, int(self.ddf.shape[0]))

    def output_names(self, figure: bool = True) -> dict[str, str]:
        """File names :meth:`save` writes, by key (``warped_image``, ``ddf``, ``metrics``, ...)."""
        names = {"warped_image": "warped_moving.nii.gz", "ddf": "ddf.nii.gz", "metrics": "metrics.csv"}
        if self.warped_label is not None:
            names["warped_label"] = "warped_moving_label.nii.gz"
        if figure:
            names["figure"] = "registration.png"
        if self.theta is not None:
            names["affine"] = "affine.tfm"
        if self.inverse_ddf is not None:
            names["inverse_ddf"] = "inverse_ddf.nii.gz"
        return names

    def save(self, output_dir: str | os.PathLike, overwrite: bool = False, figure: bool = True) -> dict[str, Path]:
        """Write ``warped_moving.nii.gz``, ``ddf.nii.gz`` (ITK displacement field, mm), ``warped_moving_label.nii.gz``,
        ``metrics.csv`` and ``registration.png`` into ``output_dir``; with an affine stage also ``affine.tfm`` (the
        affine alone as an ITK transform file, which SimpleITK, ANTs and 3D Slicer read), with ``inverse=True`` also
        ``inverse_ddf.nii.gz``.

        The set is written atomically: every file goes to a hidden temporary folder inside ``output_dir`` first and
        is moved into place only when all are complete, so a failure leaves no partial set; with ``overwrite=True``
        the outputs of an earlier run that this run does not write (e.g. its ``affine.tfm``) are removed, so the
        folder never mixes two runs. An input file is never overwritten, even with ``overwrite=True``.

        Raises:
            FileExistsError: listing the files that exist already, when ``overwrite`` is False, or an output that is
                one of the inputs (nothing is written).
            ValueError: when the fixed grid is sheared (e.g. CT gantry tilt): ITK displacement fields and transform
                files cannot carry a shear, so the files would not overlay the fixed image (nothing is written).
        """
        out = Path(output_dir)
        names = self.output_names(figure)
        paths = {k: out / v for k, v in names.items()}
        inputs = {os.path.realpath(p) for p in self.input_paths}
        clash = [str(p) for p in paths.values() if os.path.realpath(p) in inputs]
        if clash:
            raise FileExistsError(
                f"output files {clash} are inputs of this registration; choose another output folder."
            )
        existing = [str(p) for p in paths.values() if p.exists()]
        if existing and not overwrite:
            raise FileExistsError(f"output files exist already: {existing}; pass overwrite=True to replace them.")
        _check_orthogonal(self.fixed_affine)
        created = not out.exists()
        try:
            make_folder(out)
            with tempfile.TemporaryDirectory(dir=out, prefix=".monai-reg-") as tmp:
                self._write(Path(tmp), names)
                if overwrite:
                    clear_outputs(out, keep=set(names.values()) | inputs)
                for name in names.values():
                    os.replace(Path(tmp) / name, out / name)
        except OSError as err:
            if created and out.is_dir() and not any(out.iterdir()):
                out.rmdir()  # nothing written: leave no empty folder either
            if err.errno is None:
                raise
            failed = Path(str(err.filename or "")).name  # a file of the temporary folder: name the output instead
            raise write_error(err, out / failed if failed in names.values() else out) from err
        return paths

    def _write(self, folder: Path, names: dict[str, str]) -> None:
        """Write the files ``names`` into ``folder`` (the temporary folder of :meth:`save`)."""
        from ..io import save_ddf, save_image, save_itk_affine

        affine = self.fixed_affine
        save_image(folder / names["warped_image"], self.warped_image.detach().cpu().numpy(), affine)
        save_ddf(folder / names["ddf"], self.ddf.detach().cpu(), affine)
        if "warped_label" in names:
            lab = self.warped_label.detach().cpu().numpy()
            lab = lab.astype(np.uint8 if lab.max(initial=0) <= 255 else np.int32)
            save_image(folder / names["warped_label"], lab, affine)
        if "affine" in names:
            save_itk_affine(folder / names["affine"], self.theta.detach().cpu(), affine)
        if "inverse_ddf" in names:
            save_ddf(folder / names["inverse_ddf"], self.inverse_ddf.detach().cpu(), affine)
        with open(folder / names["metrics"], "w", newline="") as f:
            writer = csv.writer(f)
            writer.writerow(["metric", "value"])
            for k, v in self.metrics.items():
                writer.writerow([k, f"{v:.6g}"])
        if "figure" in names:
            self._figure(folder / names["figure"])

    def _figure(self, path: Path) -> None:
        from ..visualise import save_registration_figure

        save_registration_figure(
            path,
            minmax(self.moving_on_fixed[0]),
            minmax(self.fixed[0]),
            minmax(self.warped_image[0]),
            self.ddf,
        )


def clear_outputs(folder: str | os.PathLike, keep: Iterable[str] = ()) -> list[Path]:
    """Remove from ``folder`` the files :meth:`RegistrationResult.save` writes (:data:`OUTPUT_FILES`) except the
    names (or real paths) in ``keep``, so a folder never mixes the outputs of two runs; the folder itself is removed
    when that leaves it empty.

    Returns:
        The removed files.
    """
    folder, keep = Path(folder), set(map(str, keep))
    removed = []
    for name in OUTPUT_FILES:
        path = folder / name
        if path.is_file() and name not in keep and os.path.realpath(path) not in keep:
            path.unlink()
            removed.append(path)
    if removed and folder.is_dir() and not any(folder.iterdir()):
        folder.rmdir()
    return removed


def csv_text(
    rows: Iterable[Mapping | Iterable], fieldnames: list[str] | None = None, header: list[str] | None = None
) -> str:
    """CSV text of ``rows``: dicts under the columns ``fieldnames``, or lists under the row ``header``."""
    buffer = io.StringIO()
    if fieldnames is not None:
        writer = csv.DictWriter(buffer, fieldnames=fieldnames)
        writer.writeheader()
    else:
        writer = csv.writer(buffer)
        writer.writerow(header or [])
    writer.writerows(rows)
    return buffer.getvalue()


def write_metric_tables(
    output_dir: str | os.PathLike, rows: list[Mapping[str, object]], skip: Iterable[str] = ("pair",)
) -> tuple[Path, Path]:
    """Write ``metrics.csv`` (one row per pair, the union of the rows' keys as columns) and ``summary.csv`` (mean,
    median, std and count of every numeric column but ``skip``) into ``output_dir``, as ``monai-reg predict`` and the
    bundles' inference workflow do.

    Both texts are made first, then each file is written atomically (temporary file, then rename): a failure leaves
    the previous tables as they were.

    Returns:
        The paths of ``metrics.csv`` and ``summary.csv``.
    """
    out = Path(output_dir)
    keys = list(dict.fromkeys(k for r in rows for k in r))
    summary = []
    for k in (k for k in keys if k not in set(skip)):
        vals = [r[k] for r in rows if isinstance(r.get(k), (int, float, np.number)) and not isinstance(r[k], bool)]
        if vals:
            v = np.asarray(vals, dtype=float)
            summary.append([k, f"{v.mean():.6g}", f"{np.median(v):.6g}", f"{v.std():.6g}", len(v)])
    metrics_text = csv_text(rows, fieldnames=keys)
    summary_text = csv_text(summary, header=["metric", "mean", "median", "std", "n"])
    return atomic_write_text(out / "metrics.csv", metrics_text), atomic_write_text(out / "summary.csv", summary_text)
