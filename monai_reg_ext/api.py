"""Python API: register a pair of images with a trained registration network.

``register`` takes file paths, arrays or MONAI ``MetaTensor`` of any size and spacing, runs the network on its own
grid and returns the DDF on the fixed image's native grid (see ``docs/conventions.md``).
"""

from __future__ import annotations

import csv
import logging
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Union

import numpy as np
import torch
from monai.data import MetaTensor
from monai.transforms import LoadImage, ResampleToMatch

from .bundle import BundleModel, load_bundle
from .spatial import resize_ddf, resize_image, warp_image

__all__ = ["register", "RegistrationResult", "load_input"]

logger = logging.getLogger(__name__)

ImageLike = Union[str, os.PathLike, np.ndarray, torch.Tensor]


def load_input(x: ImageLike, name: str, spatial_dims: int, single_channel: bool = False) -> MetaTensor:
    """Load an image or label as a channel-first ``MetaTensor`` ``(C, *S)`` with its affine.

    Args:
        x: a file readable by MONAI's ``LoadImage`` (NIfTI, ``.mha``, ``.nrrd``, ...), an array/tensor ``(*S)`` or
            ``(C, *S)`` (identity affine unless it is a ``MetaTensor``), or a ``MetaTensor``.
        name: what it is (``"moving"``, ``"fixed_label"``...), used in error messages.
        spatial_dims: number of spatial dims the network expects.
        single_channel: refuse more than one channel (intensity images; a 4-D NIfTI where a 3-D one is expected).

    Raises:
        FileNotFoundError / ValueError naming the input (and its file) and what was expected.
    """
    what = name
    if isinstance(x, (str, os.PathLike)):
        path = Path(x)
        what = f"{name} {str(path)!r}"
        if not path.exists():
            raise FileNotFoundError(f"{name}: file {str(path)!r} does not exist.")
        if path.is_dir():
            raise ValueError(f"{name}: {str(path)!r} is a directory; expected an image file.")
        if path.suffix.lower() in (".h5", ".hdf5"):
            raise ValueError(
                f"{what}: H5 files are read by the datasets (images.h5 + key), not here; expected an image file "
                "(NIfTI, .mha, .nrrd...)."
            )
        try:
            img = LoadImage(image_only=True, ensure_channel_first=True)(str(path))
        except Exception as err:  # readers raise many types; report them with the file name
            first = (str(err).strip().splitlines() or [""])[0]
            raise ValueError(
                f"{name}: cannot read {str(path)!r} as an image ({type(err).__name__}: {first})."
            ) from None
        if img.ndim == spatial_dims and spatial_dims == 2:
            img = img[None]
    else:
        t = x if isinstance(x, torch.Tensor) else torch.as_tensor(np.asarray(x))
        if t.ndim == spatial_dims:
            t = t[None]
        img = t if isinstance(t, MetaTensor) else MetaTensor(t, affine=torch.eye(4 if spatial_dims == 3 else 3))
    if img.ndim != spatial_dims + 1:
        raise ValueError(
            f"{what}: expected a {spatial_dims}-D image (shape (*S) or (C, *S)), got shape {tuple(img.shape)}."
        )
    if single_channel and img.shape[0] != 1:
        raise ValueError(
            f"{what}: expected a single-channel {spatial_dims}-D image, got {img.shape[0]} channels "
            f"(a {spatial_dims + 1}-D array, shape {tuple(img.shape)})."
        )
    img = img.float()
    if not torch.isfinite(img).all():
        raise ValueError(f"{what}: contains NaN or infinite voxels.")
    return img


def _minmax(x: torch.Tensor) -> torch.Tensor:
    lo, hi = x.min(), x.max()
    return (x - lo) / (hi - lo) if hi > lo else torch.zeros_like(x)


def _grid_differences(img: MetaTensor, fixed: MetaTensor) -> list[str]:
    """What differs between two grids: ``shape``, ``spacing``, ``orientation``, ``origin`` (empty when they match)."""
    from monai.data.utils import to_affine_nd

    nd = img.ndim - 1  # spatial dims; 2D images may carry a 4x4 affine (MONAI's default)
    a = np.asarray(to_affine_nd(nd, np.asarray(img.affine, dtype=np.float64)), dtype=np.float64)
    b = np.asarray(to_affine_nd(nd, np.asarray(fixed.affine, dtype=np.float64)), dtype=np.float64)
    diffs = []
    if tuple(img.shape[1:]) != tuple(fixed.shape[1:]):
        diffs.append(f"shape {tuple(img.shape[1:])} vs {tuple(fixed.shape[1:])}")
    sa, sb = np.linalg.norm(a[:nd, :nd], axis=0), np.linalg.norm(b[:nd, :nd], axis=0)
    if not np.allclose(sa, sb, atol=1e-4):
        diffs.append(f"spacing {np.round(sa, 4).tolist()} vs {np.round(sb, 4).tolist()}")
    if not np.allclose(a[:nd, :nd] / sa, b[:nd, :nd] / sb, atol=1e-4):
        diffs.append("orientation")
    if not np.allclose(a[:nd, nd], b[:nd, nd], atol=1e-4):
        diffs.append("origin")
    if not diffs and not np.allclose(a, b, atol=1e-4):
        diffs.append("affine")
    return diffs


def _on_fixed_grid(img: MetaTensor, fixed: MetaTensor, name: str, reference: str = "fixed image") -> MetaTensor:
    """Resample ``img`` onto the fixed grid in world coordinates (skipped when the grids already match).

    A resampling is never silent: it logs a warning saying what differs (shape, spacing, orientation, origin).
    """
    diffs = _grid_differences(img, fixed)
    if not diffs:
        return img
    logger.warning(
        "%s: grid differs from the %s (%s): resampled onto the %s grid in world coordinates (bilinear).",
        name,
        reference,
        ", ".join(diffs),
        reference,
    )
    out = ResampleToMatch(mode="bilinear", padding_mode="border")(img, img_dst=fixed)
    return out


def _check_label(lab: torch.Tensor, name: str) -> None:
    lo, hi = float(lab.min()), float(lab.max())
    if lo < 0 or hi > 1:
        raise ValueError(
            f"{name}: label values must lie in [0, 1] (binary masks, several classes as one-hot channels, not a "
            f"label map 0..K); got range [{lo:g}, {hi:g}]."
        )


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
    """

    warped_image: MetaTensor
    ddf: torch.Tensor
    fixed: MetaTensor
    moving_on_fixed: MetaTensor
    warped_label: MetaTensor | None = None
    metrics: dict[str, float] = field(default_factory=dict)
    seconds: float = 0.0
    input_paths: tuple[str, ...] = ()

    @property
    def fixed_affine(self) -> np.ndarray:
        """The fixed image's voxel-to-world (RAS) affine, ``(D+1, D+1)``, which every output carries.

        2D images read from NIfTI carry a 4x4 affine; it is reduced to the 3x3 of their two spatial axes.
        """
        from monai.data.utils import to_affine_nd

        affine = np.asarray(self.fixed.affine, dtype=np.float64)
        return np.asarray(to_affine_nd(int(self.ddf.shape[0]), affine), dtype=np.float64)

    def save(self, output_dir: str | os.PathLike, overwrite: bool = False, figure: bool = True) -> dict[str, Path]:
        """Write ``warped_moving.nii.gz``, ``ddf.nii.gz`` (ITK displacement field, mm), ``warped_moving_label.nii.gz``,
        ``metrics.csv`` and ``registration.png`` into ``output_dir``.

        Every file is written under a temporary name and renamed when complete; an input file is never overwritten,
        even with ``overwrite=True``.

        Raises:
            FileExistsError: listing the files that exist already, when ``overwrite`` is False, or an output that is
                one of the inputs (nothing is written).
        """
        from .io import save_ddf, save_image
        from .io.atomic import atomic_write_path

        out = Path(output_dir)
        names = {"warped_image": "warped_moving.nii.gz", "ddf": "ddf.nii.gz", "metrics": "metrics.csv"}
        if self.warped_label is not None:
            names["warped_label"] = "warped_moving_label.nii.gz"
        if figure:
            names["figure"] = "registration.png"
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
        out.mkdir(parents=True, exist_ok=True)
        affine = self.fixed_affine
        save_image(paths["warped_image"], self.warped_image.detach().cpu().numpy(), affine, overwrite=True)
        save_ddf(paths["ddf"], self.ddf.detach().cpu(), affine, overwrite=True)
        if self.warped_label is not None:
            lab = self.warped_label.detach().cpu().numpy().astype(np.uint8)
            save_image(paths["warped_label"], lab, affine, overwrite=True)
        with atomic_write_path(paths["metrics"]) as tmp, open(tmp, "w", newline="") as f:
            writer = csv.writer(f)
            writer.writerow(["metric", "value"])
            for k, v in self.metrics.items():
                writer.writerow([k, f"{v:.6g}"])
        if figure:
            with atomic_write_path(paths["figure"]) as tmp:
                self._figure(tmp)
        return paths

    def _figure(self, path: Path) -> None:
        from .visualise import save_registration_figure

        save_registration_figure(
            path,
            _minmax(self.moving_on_fixed[0]),
            _minmax(self.fixed[0]),
            _minmax(self.warped_image[0]),
            self.ddf,
        )


def _landmark_tre(
    result: RegistrationResult, moving_landmarks, fixed_landmarks, moving_affine, space: str, moving_shape
) -> dict:
    from .io import read_landmarks
    from .metrics import landmark_tre

    # points outside their image are refused (ValueError naming the file and the point)
    fixed_pts = read_landmarks(
        fixed_landmarks, space=space, affine=result.fixed_affine, spatial_shape=tuple(result.fixed.shape[1:])
    )
    moving_pts = read_landmarks(moving_landmarks, space=space, affine=moving_affine, spatial_shape=moving_shape)
    if len(fixed_pts) != len(moving_pts):
        raise ValueError(
            f"landmarks: {fixed_landmarks} has {len(fixed_pts)} points but {moving_landmarks} has {len(moving_pts)}."
        )
    # The DDF refers to the moving image resampled onto the fixed grid in world coordinates (moving_on_fixed), so
    # the moving landmarks are expressed as voxel indices of that grid: world = A_moving m, index = A_fixed^-1 world.
    a_fix = np.asarray(result.fixed_affine, dtype=np.float64)
    a_mov = np.asarray(moving_affine, dtype=np.float64)
    moving_h = np.concatenate([np.asarray(moving_pts, np.float64), np.ones((len(moving_pts), 1))], axis=1)
    moving_on_fixed = (np.linalg.inv(a_fix) @ a_mov @ moving_h.T).T[:, :-1]
    before = landmark_tre(moving_on_fixed, fixed_pts, torch.zeros_like(result.ddf)[None], a_fix)
    after = landmark_tre(moving_on_fixed, fixed_pts, result.ddf[None], a_fix)
    return {
        "tre_mm_before": float(before.mean()),
        "tre_mm_after": float(after.mean()),
        "tre_mm_after_median": float(after.median()),
    }


_IO_KEYS = ("image_loss", "regulariser", "weight", "lr", "transform", "control_point_spacing", "levels")


def _instance_optimisation_settings(model: BundleModel, io_kwargs: dict[str, Any] | None) -> dict[str, Any]:
    """Keyword arguments of :func:`monai_reg_ext.optimise.instance_optimise` for a bundle.

    Sources, first match wins for the loss: the inference config's ``instance_optimisation`` dict (keys among
    ``image_loss``, ``regulariser``, ``weight``, ``lr``, ``transform``, ``control_point_spacing``, ``levels``; losses
    as ``_target_`` components); else the image loss and regulariser of the bundle's ``configs/train.json`` ``loss``
    (a ``RegistrationLoss``; regulariser weight = ``weights.regulariser / weights.image``, the label term is
    dropped); else ``instance_optimise``'s defaults (LNCC with kernel 7 + 2 x bending energy, control points every 4
    voxels). ``io_kwargs`` (any ``instance_optimise`` argument) override all of these.
    """
    from monai.bundle import ConfigParser

    settings: dict[str, Any] = {}
    config = dict(model.config or {})
    if "instance_optimisation" in config:
        block = config["instance_optimisation"]
        unknown = set(block) - set(_IO_KEYS)
        if unknown:
            raise ValueError(
                f"inference config 'instance_optimisation': expected keys among {_IO_KEYS}, got {sorted(unknown)}."
            )
        parsed = ConfigParser(config).get_parsed_content("instance_optimisation", instantiate=True)
        settings = {("reg_weight" if k == "weight" else k): v for k, v in dict(parsed).items()}
    elif model.bundle_dir is not None and (Path(model.bundle_dir) / "configs" / "train.json").is_file():
        parser = ConfigParser()
        parser.read_config(str(Path(model.bundle_dir) / "configs" / "train.json"))
        parser["bundle_root"] = str(model.bundle_dir)
        if "loss" in parser and "image_loss" in parser["loss"]:
            settings["image_loss"] = parser.get_parsed_content("loss#image_loss", instantiate=True)
            reg = parser["loss"].get("regulariser")
            weights = parser.get_parsed_content("loss#weights") if "weights" in parser["loss"] else {}
            if isinstance(weights, dict):
                w_img, w_reg = float(weights.get("image", 1.0)), float(weights.get("regulariser", 1.0))
            else:
                w_img, w_reg = float(weights[0]), float(weights[2])
            if reg is None or w_reg == 0 or w_img <= 0:
                settings["reg_weight"] = 0.0
            else:
                settings["regulariser"] = parser.get_parsed_content("loss#regulariser", instantiate=True)
                settings["reg_weight"] = w_reg / w_img
    settings.update(io_kwargs or {})
    return settings


def register(
    moving: ImageLike,
    fixed: ImageLike,
    bundle: str | os.PathLike | BundleModel | None = None,
    moving_label: ImageLike | None = None,
    fixed_label: ImageLike | None = None,
    moving_landmarks: str | os.PathLike | np.ndarray | None = None,
    fixed_landmarks: str | os.PathLike | np.ndarray | None = None,
    landmark_space: str = "voxel",
    device: str | torch.device | None = None,
    network: torch.nn.Module | None = None,
    spatial_size: tuple[int, ...] | None = None,
    instance_optimisation: int = 0,
    io_kwargs: dict[str, Any] | None = None,
    anti_aliasing: bool = False,
) -> RegistrationResult:
    """Register a moving image to a fixed image with a trained network.

    Steps: load; resample the moving image (and label) onto the fixed grid in world coordinates when the grids
    differ; min-max normalise both to [0, 1]; resize to the network grid (``align_corners=True``; with anti-aliasing,
    a Gaussian low-pass first and min-max again after it, as the training preprocessing); predict the DDF;
    resize the DDF back to the fixed native grid (:func:`~monai_reg_ext.resize_ddf`); warp the moving image (in its
    own intensities) and label.

    Args:
        moving: the image to deform (file path, array ``(*S)``/``(C, *S)`` or ``MetaTensor``).
        fixed: the reference image; its grid and affine define every output.
        bundle: a bundle folder (``configs/inference.json`` + ``models/model.pt``) or a loaded :class:`BundleModel`.
        moving_label, fixed_label: optional labels ``(L, *S)`` (or ``(*S)``) in [0, 1] for Dice.
        moving_landmarks, fixed_landmarks: optional corresponding points (CSV/JSON files or ``(N, D)`` arrays) for TRE.
        landmark_space: ``"voxel"`` (indices of each image) or ``"physical"`` (world RAS mm) for the landmark files.
        device: where to run (default: CUDA when available, else CPU).
        network: a network to use instead of a bundle (``network(moving, fixed) -> {"ddf": ...}``), with
            ``spatial_size``.
        spatial_size: the network grid when ``network`` is given.
        instance_optimisation: iterations of instance optimisation (0: none): the network's DDF is refined on the
            network grid and images (:func:`monai_reg_ext.optimise.instance_optimise`) before it is resized to the
            fixed grid, with the bundle's image loss and regulariser (see ``_instance_optimisation_settings``:
            inference config ``instance_optimisation``, else train.json ``loss``, else LNCC(7) + 2 x bending);
            ``metrics`` then holds ``instance_optimisation_seconds`` and the loss before/after.
        io_kwargs: extra :func:`~monai_reg_ext.optimise.instance_optimise` arguments (override the bundle's).
        anti_aliasing: low-pass the images before downsampling them to ``spatial_size`` when ``network`` is given (a
            bundle carries its own setting, :attr:`BundleModel.anti_aliasing`).

    Returns:
        A :class:`RegistrationResult`; call ``.save(output_dir)`` to write NIfTI files, metrics and a PNG.
    """
    dev = torch.device(device) if device is not None else torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if isinstance(bundle, BundleModel):
        model = bundle
    elif bundle is not None:
        model = load_bundle(bundle, device=dev)
    elif network is not None and spatial_size is not None:
        model = BundleModel(
            network=network.to(dev).eval(),
            spatial_size=tuple(int(s) for s in spatial_size),
            anti_aliasing=bool(anti_aliasing),
        )
    else:
        raise ValueError("register: give a bundle folder, or a network together with spatial_size.")
    if isinstance(instance_optimisation, bool) or int(instance_optimisation) != instance_optimisation:
        raise ValueError(f"register: instance_optimisation must be an int >= 0, got {instance_optimisation!r}.")
    if instance_optimisation < 0:
        raise ValueError(f"register: instance_optimisation must be an int >= 0, got {instance_optimisation}.")
    model.network.to(dev)
    ndim = len(model.spatial_size)

    fixed_img = load_input(fixed, "fixed", ndim, single_channel=True)
    moving_img = load_input(moving, "moving", ndim, single_channel=True)
    from monai.data.utils import to_affine_nd

    moving_affine = np.asarray(to_affine_nd(ndim, np.asarray(moving_img.affine, dtype=np.float64)), dtype=np.float64)
    labels = {}
    for key, value, ref in (("moving_label", moving_label, moving_img), ("fixed_label", fixed_label, fixed_img)):
        if value is None:
            continue
        lab = load_input(value, key, ndim)
        if tuple(lab.shape[1:]) != tuple(ref.shape[1:]):
            raise ValueError(
                f"{key}: spatial shape {tuple(lab.shape[1:])} differs from its image's {tuple(ref.shape[1:])}."
            )
        _check_label(lab, key)
        if not bool((lab >= 0.5).any()):
            logger.warning("%s: the label is empty (no voxel >= 0.5): its Dice is 0, or nan when both are empty.", key)
        labels[key] = lab
    if ("moving_label" in labels) != ("fixed_label" in labels) and "fixed_label" in labels:
        logger.warning("fixed_label given without moving_label: no Dice is computed.")

    start = time.perf_counter()
    moving_fixed = _on_fixed_grid(moving_img, fixed_img, "moving")
    fixed_size = tuple(fixed_img.shape[1:])

    def to_net(x: torch.Tensor) -> torch.Tensor:
        x = _minmax(x[:1].as_tensor() if isinstance(x, MetaTensor) else x[:1])[None].to(dev)
        x = resize_image(x, model.spatial_size, anti_aliasing=model.anti_aliasing)
        # the training preprocessing resizes then min-max scales: the low-pass narrows the range, so scale again
        return _minmax(x) if model.anti_aliasing else x

    io_metrics: dict[str, float] = {}
    with torch.no_grad():
        moving_net, fixed_net = to_net(moving_fixed), to_net(fixed_img)
        out = model.network(moving_net, fixed_net)
        ddf_net = out["ddf"] if isinstance(out, dict) else out
    if instance_optimisation > 0:
        from .optimise import instance_optimise

        io_settings = _instance_optimisation_settings(model, io_kwargs)
        io_start = time.perf_counter()
        refined = instance_optimise(
            moving_net, fixed_net, ddf_net.float(), iterations=int(instance_optimisation), **io_settings
        )
        ddf_net = refined.ddf
        io_metrics = {
            "instance_optimisation_seconds": time.perf_counter() - io_start,
            "instance_optimisation_loss_initial": refined.initial_loss,
            "instance_optimisation_loss_final": refined.final_loss,
        }
    with torch.no_grad():
        ddf = resize_ddf(ddf_net.float(), fixed_size)[0]
        warped = warp_image(moving_fixed.as_tensor()[None].to(dev), ddf[None])[0]
    if dev.type == "cuda":
        torch.cuda.synchronize()
    seconds = time.perf_counter() - start

    ddf = ddf.cpu()
    warped_img = MetaTensor(warped.cpu(), affine=fixed_img.affine)
    given = (moving, fixed, moving_label, fixed_label, moving_landmarks, fixed_landmarks)
    result = RegistrationResult(
        warped_image=warped_img,
        ddf=ddf,
        fixed=fixed_img,
        moving_on_fixed=moving_fixed,
        seconds=seconds,
        input_paths=tuple(str(x) for x in given if isinstance(x, (str, os.PathLike))),
    )
    metrics: dict[str, Any] = {"seconds": seconds, **io_metrics}
    if "moving_label" in labels:
        mov_lab = _on_fixed_grid(labels["moving_label"], fixed_img, "moving_label")
        warped_lab = warp_image(mov_lab.as_tensor()[None], ddf[None])[0] >= 0.5
        result.warped_label = MetaTensor(warped_lab.to(torch.uint8), affine=fixed_img.affine)
        if "fixed_label" in labels:
            from .metrics import label_dice

            fix_lab = labels["fixed_label"].as_tensor()[None]
            if fix_lab.shape[1] != mov_lab.shape[0]:
                raise ValueError(
                    f"labels: moving_label has {mov_lab.shape[0]} channels but fixed_label has {fix_lab.shape[1]}."
                )
            before = label_dice(mov_lab.as_tensor()[None], fix_lab)[0]
            after = label_dice(result.warped_label.as_tensor()[None].float(), fix_lab)[0]
            for i, (b, a) in enumerate(zip(before.tolist(), after.tolist())):
                metrics[f"dice_label{i}_before"] = b
                metrics[f"dice_label{i}_after"] = a
    from .metrics import folding_fraction, sd_log_jacobian

    metrics["folding_fraction"] = float(folding_fraction(ddf[None])[0])
    metrics["sd_log_jacobian"] = float(sd_log_jacobian(ddf[None])[0])
    if moving_landmarks is not None and fixed_landmarks is not None:
        metrics.update(
            _landmark_tre(
                result, moving_landmarks, fixed_landmarks, moving_affine, landmark_space, tuple(moving_img.shape[1:])
            )
        )
    result.metrics = metrics
    return result
