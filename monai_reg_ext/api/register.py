"""``register``: align a moving image to a fixed image, with a trained network (a bundle) or without one.

Named steps: :func:`prepare_inputs` (read, check), then :func:`predict_network` (+ instance optimisation) or
:func:`optimise_pair` (the bundle-free pipeline: initial alignment, affine, deformable), then :func:`to_native`
(DDF on the fixed native grid, warped image and label) and :func:`score` (metrics). The DDF is always on the fixed
image's native grid, in its voxels (``docs/conventions.md``).
"""

from __future__ import annotations

import logging
import os
import time
from dataclasses import dataclass, field, replace
from typing import Any, Callable, Sequence

import numpy as np
import torch
from monai.data import MetaTensor

from ..bundle import BundleModel, load_bundle
from ..io import ImageLike, load_input
from ..networks import RegistrationNet
from ..spatial import (
    compose_ddf,
    fixed_to_moving_matrix,
    grid_differences,
    resample_to_grid,
    resize_ddf,
    resize_image,
    warp_image,
    warp_to_grid,
)
from ..spatial.resample import affine_nd
from .labels import is_label_map, label_values, to_label_map, to_one_hot
from .result import RegistrationResult, _check_orthogonal, minmax
from .scoring import deformation_metrics, label_metrics, landmark_metrics
from .settings import instance_optimisation_settings

__all__ = [
    "register",
    "PreparedPair",
    "prepare_inputs",
    "predict_network",
    "network_ddf",
    "optimise_pair",
    "to_native",
    "score",
    "world_overlap",
    "check_world_overlap",
    "describe_pair",
]

logger = logging.getLogger(__name__)

MIN_VOXELS = 8
"""Smallest number of voxels along any axis that bundle-free registration accepts (its coarsest level)."""


@dataclass
class PreparedPair:
    """The checked inputs of one registration (channel-first ``MetaTensor`` with their affines).

    Attributes:
        moving, fixed: ``(1, *S_moving)``, ``(1, *S_fixed)`` in their own intensities.
        moving_on_fixed: the moving image resampled onto the fixed grid in world coordinates (itself when the grids
            match).
        labels: ``moving_label`` ``(L, *S_moving)`` and ``fixed_label`` ``(L, *S_fixed)`` when given.
        fixed_to_moving: ``(D + 1, D + 1)`` fixed voxel -> moving voxel map (``inv(A_moving) @ A_fixed``).
        same_grid: whether both images share one grid.
        label_values: the values of integer label maps given as labels (they are held one-hot in ``labels``, one
            channel per value), None for one-hot labels.
    """

    moving: MetaTensor
    fixed: MetaTensor
    moving_on_fixed: MetaTensor
    labels: dict[str, MetaTensor] = field(default_factory=dict)
    fixed_to_moving: torch.Tensor | None = None
    same_grid: bool = True
    label_values: tuple[int, ...] | None = None

    @property
    def ndim(self) -> int:
        """Number of spatial dims."""
        return self.fixed.ndim - 1


def _check_label(lab: torch.Tensor, name: str, path: Any) -> None:
    lo, hi = float(lab.min()), float(lab.max())
    if lo < 0 or hi > 1:
        where = f" ({path})" if isinstance(path, (str, os.PathLike)) else ""
        raise ValueError(
            f"{name}{where}: expected one-hot channels in [0, 1] or an integer label map (one channel, values "
            f"0..K, e.g. 0/255); got values in [{lo:g}, {hi:g}] that are not integers >= 0."
        )


def _load_labels(moving_label, fixed_label, moving: MetaTensor, fixed: MetaTensor, ndim: int):
    """Read the labels; integer label maps become one-hot channels over the values of both (see :mod:`.labels`)."""
    labels, given = {}, {"moving_label": moving_label, "fixed_label": fixed_label}
    for key, ref in (("moving_label", moving), ("fixed_label", fixed)):
        if given[key] is None:
            continue
        lab = load_input(given[key], key, ndim)
        if tuple(lab.shape[1:]) != tuple(ref.shape[1:]):
            raise ValueError(
                f"{key}: spatial shape {tuple(lab.shape[1:])} differs from its image's {tuple(ref.shape[1:])}."
            )
        if not is_label_map(lab):
            _check_label(lab, key, given[key])
        labels[key] = lab
    maps = [k for k, v in labels.items() if is_label_map(v)]
    values = None
    if maps:
        for key in labels:
            if key not in maps and labels[key].shape[0] != 1:
                raise ValueError(f"labels: {maps[0]} is a label map but {key} has {labels[key].shape[0]} channels.")
        values = label_values(*labels.values())
        labels = {k: MetaTensor(to_one_hot(v.as_tensor(), values), affine=v.affine) for k, v in labels.items()}
    for key, lab in labels.items():
        if not bool((lab >= 0.5).any()):
            logger.warning("%s: the label is empty (no voxel >= 0.5): its Dice is 0, or nan when both are empty.", key)
    if "fixed_label" in labels and "moving_label" not in labels:
        logger.warning("fixed_label given without moving_label: no Dice is computed.")
    return labels, values


def prepare_inputs(
    moving: ImageLike,
    fixed: ImageLike,
    ndim: int,
    moving_label: ImageLike | None,
    fixed_label: ImageLike | None,
    min_voxels: int = 1,
) -> PreparedPair:
    """Read and check both images and labels; resample the moving image onto the fixed grid when the grids differ.

    With ``min_voxels > 1`` (registration without a network, whose moving image stays on its own grid) the moving
    image is resampled silently (:func:`~monai_reg_ext.spatial.warp_to_grid`), only for figures and Dice before.

    Raises:
        FileNotFoundError / ValueError naming the input, its file and what was expected (e.g. fewer than
        ``min_voxels`` voxels, or a single voxel, along an axis; a singular affine).
    """
    fixed_img = load_input(fixed, "fixed", ndim, single_channel=True)
    moving_img = load_input(moving, "moving", ndim, single_channel=True)
    for name, img, given in (("fixed", fixed_img, fixed), ("moving", moving_img, moving)):
        what = f"{name} {str(given)!r}" if isinstance(given, (str, os.PathLike)) else name
        lin = affine_nd(img.affine, ndim)[:ndim, :ndim]
        if not np.isfinite(lin).all() or abs(np.linalg.det(lin)) < 1e-12:
            raise ValueError(f"{what}: its affine is singular (determinant 0), so its voxels have no world position.")
        if name == "fixed":  # its grid is the outputs' grid: ITK files cannot carry a shear
            _check_orthogonal(np.asarray(affine_nd(img.affine, ndim), dtype=np.float64), what)
        fewest = max(2, min_voxels)  # one voxel along an axis: a slice, which no 3-D registration can place
        if min(img.shape[1:]) < fewest:
            without = " without a network" if min_voxels > 1 else ""
            raise ValueError(
                f"{what}: expected at least {fewest} voxels along every axis for registration{without}, got shape "
                f"{tuple(img.shape[1:])} (a single slice or an empty axis)."
            )
    labels, values = _load_labels(moving_label, fixed_label, moving_img, fixed_img, ndim)
    same = not grid_differences(moving_img, fixed_img)
    m = fixed_to_moving_matrix(moving_img.affine, fixed_img.affine, ndim)
    if same:
        on_fixed = moving_img
    elif min_voxels > 1:
        zero = torch.zeros(1, ndim, *fixed_img.shape[1:])
        on_fixed = MetaTensor(warp_to_grid(moving_img.as_tensor()[None], zero, m)[0], affine=fixed_img.affine)
    else:
        on_fixed = resample_to_grid(moving_img, fixed_img, "moving")
    return PreparedPair(moving_img, fixed_img, on_fixed, labels, m, same, values)


def world_overlap(pair: PreparedPair, max_points: int = 32) -> float:
    """Fraction of the fixed voxel centres (on a grid of at most ``max_points`` per axis) that lie inside the moving
    image, both placed in world space by their affines (no alignment)."""
    shape = tuple(int(s) for s in pair.fixed.shape[1:])
    ndim = len(shape)
    if pair.fixed_to_moving is None:
        return 1.0
    axes = [np.linspace(0, s - 1, min(s, max_points)) for s in shape]
    points = np.stack(np.meshgrid(*axes, indexing="ij")).reshape(ndim, -1)
    m = np.asarray(pair.fixed_to_moving, dtype=np.float64)
    moved = m[:ndim, :ndim] @ points + m[:ndim, ndim:]
    upper = np.asarray(pair.moving.shape[1:], dtype=np.float64)[:, None] - 0.5
    return float(((moved >= -0.5) & (moved <= upper)).all(axis=0).mean())


def check_world_overlap(pair: PreparedPair, names: str, minimum: float = 0.1) -> None:
    """Refuse a pair whose images barely overlap in world space (e.g. a moving image 10 m away, or in another world
    frame): a network sees the moving image resampled onto the fixed grid, which would then be (almost) empty.

    Raises:
        ValueError: naming both files (``names``) and the overlap found.
    """
    overlap = world_overlap(pair)
    if overlap < minimum:
        raise ValueError(
            f"{names}: the images do not overlap in world space: {100 * overlap:.1f} % of the fixed grid lies inside "
            f"the moving image (expected >= {100 * minimum:.0f} %); check both headers' affines (origin, spacing, "
            "orientation), or add the affine stage (--stages affine) to align them first."
        )


def describe_pair(moving: Any, fixed: Any) -> str:
    """``moving '<file>' -> fixed '<file>'`` (``moving`` / ``fixed`` for arrays), for messages about a pair."""

    def one(name: str, x: Any) -> str:
        return f"{name} {str(x)!r}" if isinstance(x, (str, os.PathLike)) else name

    return f"{one('moving', moving)} -> {one('fixed', fixed)}"


def network_ddf(network: torch.nn.Module, moving: torch.Tensor, fixed: torch.Tensor) -> torch.Tensor:
    """The DDF ``(B, D, *S)`` of ``network`` for its two inputs ``(B, C, *S)``.

    A :class:`~monai_reg_ext.networks.RegistrationNet` is called with the pair concatenated along channels, which
    returns the DDF alone (the same values: its two-input call also warps the moving image on the network grid, which
    ``register`` does not use); any other network as ``network(moving, fixed)``, returning a dict with ``"ddf"`` or
    the DDF.
    """
    if isinstance(network, RegistrationNet):
        return network(torch.cat([moving, fixed], dim=1))
    out = network(moving, fixed)
    return out["ddf"] if isinstance(out, dict) else out


def predict_network(
    model: BundleModel, pair: PreparedPair, dev: torch.device, instance_optimisation: int, io_kwargs: dict | None
) -> tuple[torch.Tensor, dict[str, float]]:
    """The network's DDF ``(1, D, *S_network)`` on its own grid (voxels of that grid), refined when asked."""

    def to_net(x: torch.Tensor) -> torch.Tensor:
        x = minmax(x[:1].as_tensor() if isinstance(x, MetaTensor) else x[:1])[None].to(dev)
        x = resize_image(x, model.spatial_size, anti_aliasing=model.anti_aliasing)
        # the training preprocessing resizes then min-max scales: the low-pass narrows the range, so scale again
        return minmax(x) if model.anti_aliasing else x

    # without instance optimisation nothing needs autograd: inference mode (no version counters or views tracked)
    with torch.inference_mode() if instance_optimisation <= 0 else torch.no_grad():
        moving_net, fixed_net = to_net(pair.moving_on_fixed), to_net(pair.fixed)
        ddf_net = network_ddf(model.network, moving_net, fixed_net)
    if instance_optimisation <= 0:
        return ddf_net.clone(), {}  # a normal tensor again: callers may change it in place
    from ..optimise import instance_optimise

    settings = instance_optimisation_settings(model, io_kwargs)
    io_start = time.perf_counter()
    refined = instance_optimise(
        moving_net, fixed_net, ddf_net.float(), iterations=int(instance_optimisation), **settings
    )
    return refined.ddf, {
        "instance_optimisation_seconds": time.perf_counter() - io_start,
        "instance_optimisation_loss_initial": refined.initial_loss,
        "instance_optimisation_loss_final": refined.final_loss,
    }


def _progress_callback(enabled: bool, total: int) -> tuple[Callable | None, Any]:
    if not enabled:
        return None, None
    from tqdm.auto import tqdm

    bar = tqdm(total=total, desc="register", unit="it", leave=False)

    def callback(level: int, iteration: int, loss: float, ddf: torch.Tensor) -> None:
        bar.update(1)
        bar.set_postfix(level=level, loss=f"{loss:.4f}", refresh=False)

    return callback, bar


def optimise_pair(pair: PreparedPair, dev: torch.device, options: dict[str, Any], progress: bool = False):
    """The bundle-free pipeline (:func:`~monai_reg_ext.optimise.register_images`) on a prepared pair.

    The moving image stays on its own grid (nothing outside the fixed field of view is lost). Intensities are scaled
    to [0, 1] between their 0.5 and 99.5 percentiles.

    Returns:
        ``(PipelineResult, metrics)``; the result's DDF ``(1, D, *S_fixed)`` is in fixed voxels.

    Raises:
        ValueError: when the two images do not overlap in world space after the initial alignment.
    """
    from ..optimise import normalise_intensity, register_images

    moving = normalise_intensity(pair.moving.as_tensor()[None].to(dev))
    fixed = normalise_intensity(pair.fixed.as_tensor()[None].to(dev))
    m = pair.fixed_to_moving.to(dev) if pair.fixed_to_moving is not None else None
    names = options.get("stages", ("affine", "deformable"))
    its = list(options.get("affine_iterations", (100, 50))) if "affine" in names else []
    its += list(options.get("iterations", (100, 50, 20))) if "deformable" in names else []
    callback, bar = _progress_callback(progress, int(sum(its)))
    try:
        result = register_images(moving, fixed, m, callback=callback, check_overlap=True, **options)
    finally:
        if bar is not None:
            bar.close()
    metrics = {f"{k}_seconds": v for k, v in result.seconds.items() if k != "total"}
    return result, metrics


NETWORK_REFINEMENT = {"levels": (2, 1), "iterations": (50, 20)}
"""Schedule of the deformable stage when it refines a network's DDF (a good start: no coarsest level); a bundle's
inference config may set its own as ``registration_refinement`` (:func:`refinement_schedule`)."""


def refinement_schedule(model: BundleModel) -> dict[str, Any]:
    """The deformable stage's schedule after ``model``'s network: the inference config's ``registration_refinement``
    (``{"levels": [...], "iterations": [...]}``, downsampling factors and Adam steps per level, optionally ``"lr"``:
    Adam's learning rate in level voxels, one value or one per level), else :data:`NETWORK_REFINEMENT`.

    Returns:
        ``{"levels": tuple, "iterations": tuple}`` plus ``"lr"`` (a float or a tuple) when the config sets it.

    Raises:
        ValueError: naming the bundle's config when the entry is not two equally long lists of positive ints, or its
            ``lr`` is not a positive number or one per level.
    """
    found = model.config.get("registration_refinement") if model.config else None
    if found is None:
        return dict(NETWORK_REFINEMENT)
    where = f"{model.bundle_dir}/configs: registration_refinement"
    try:
        levels = tuple(int(x) for x in found["levels"])
        iterations = tuple(int(x) for x in found["iterations"])
    except (TypeError, KeyError, ValueError):
        raise ValueError(f"{where}: expected {{'levels': [ints], 'iterations': [ints]}}, got {found!r}.") from None
    if not levels or len(levels) != len(iterations) or min(levels + iterations) < 1:
        raise ValueError(f"{where}: expected equally long lists of positive ints, got {found!r}.")
    schedule: dict[str, Any] = {"levels": levels, "iterations": iterations}
    if found.get("lr") is not None:
        lr = found["lr"]
        rates = (lr,) if isinstance(lr, (int, float)) and not isinstance(lr, bool) else lr
        try:
            rates = tuple(float(v) for v in rates)
        except (TypeError, ValueError):
            rates = ()
        if not rates or min(rates) <= 0 or len(rates) not in (1, len(levels)):
            raise ValueError(f"{where}: 'lr' must be a number > 0 or one per level ({len(levels)}), got {lr!r}.")
        schedule["lr"] = rates[0] if len(rates) == 1 else rates
    return schedule


def network_stages(model: BundleModel, stages: Sequence[str] | str | None) -> tuple[str, ...]:
    """Pipeline stages around a network: ``stages`` if given, else the inference config's ``registration_stages``.

    ``"affine"`` runs before the network (which then sees the affinely aligned moving image), ``"deformable"``
    refines the network's DDF on the native grid, coarse to fine.

    Raises:
        ValueError: for a stage other than ``"affine"`` / ``"deformable"``.
    """
    if stages is None:
        stages = model.config.get("registration_stages", ()) if model.config else ()
    names = tuple(x.strip() for x in stages.split(",") if x.strip()) if isinstance(stages, str) else tuple(stages)
    bad = [x for x in names if x not in ("affine", "deformable")]
    if bad:
        raise ValueError(f"stages: expected a subset of ('affine', 'deformable') around a network, got {bad}.")
    return names


def predict_with_stages(
    model: BundleModel,
    pair: PreparedPair,
    dev: torch.device,
    names: tuple[str, ...],
    options: dict[str, Any],
    instance_optimisation: int,
    io_kwargs: dict | None,
    progress: bool = False,
) -> tuple[torch.Tensor, torch.Tensor | None, dict[str, float]]:
    """The network between the pipeline's stages: affine first, the network, then deformable refinement.

    Returns:
        ``(ddf (1, D, *S_fixed) fixed voxels, theta (1, D, D + 1) or None, metrics)``; the DDF includes the affine.
    """
    extra: dict[str, float] = {}
    theta, affine_ddf, net_pair = None, None, pair
    if "affine" in names:
        aff, seconds = optimise_pair(pair, dev, {**options, "stages": ("affine",)}, progress)
        theta, affine_ddf = aff.theta, aff.ddf
        aligned = warp_to_grid(pair.moving.as_tensor()[None].to(dev), affine_ddf, pair.fixed_to_moving)[0]
        net_pair = replace(pair, moving_on_fixed=MetaTensor(aligned.cpu(), affine=pair.fixed.affine))
        extra.update(seconds)
    ddf_net, io_metrics = predict_network(model, net_pair, dev, instance_optimisation, io_kwargs)
    extra.update(io_metrics)
    with torch.no_grad():
        ddf = resize_ddf(ddf_net.float(), tuple(pair.fixed.shape[1:]))
        if affine_ddf is not None:
            ddf = compose_ddf(affine_ddf.to(ddf), ddf)
    if "deformable" in names:
        refine = {**options, **refinement_schedule(model), "stages": ("deformable",), "init_ddf": ddf}
        res, seconds = optimise_pair(pair, dev, refine, progress)
        ddf = res.ddf
        extra.update(seconds)
    return ddf, theta, extra


def to_native(pair: PreparedPair, ddf: torch.Tensor, dev: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """Resize a DDF ``(1, D, *S)`` to the fixed native grid and warp the moving image with it.

    Returns:
        ``(ddf (D, *S_fixed), warped (1, *S_fixed))``; the moving image is sampled once, on its own grid.
    """
    with torch.no_grad():
        ddf = resize_ddf(ddf.float(), tuple(pair.fixed.shape[1:]))[0]
        warped = _warp(pair, pair.moving.as_tensor()[None].to(dev), ddf, "bilinear")[0]
    if dev.type == "cuda":
        torch.cuda.synchronize()
    return ddf, warped


def _warp(pair: PreparedPair, image: torch.Tensor, ddf: torch.Tensor, mode: str) -> torch.Tensor:
    if pair.same_grid:
        return warp_image(image, ddf[None], mode=mode)
    return warp_to_grid(image, ddf[None], pair.fixed_to_moving, mode=mode)


def score(
    pair: PreparedPair,
    result: RegistrationResult,
    landmarks: tuple[Any, Any, str],
) -> dict[str, float]:
    """Warp the moving label (binarised at 0.5) into ``result`` and return Dice, folding, SDlogJ and TRE."""
    metrics: dict[str, float] = {}
    if "moving_label" in pair.labels:
        mov_lab = pair.labels["moving_label"]
        warped_soft = _warp(pair, mov_lab.as_tensor()[None], result.ddf, "bilinear")[0]
        if pair.label_values is None:
            warped_lab = warped_soft >= 0.5
            result.warped_label = MetaTensor(warped_lab.to(torch.uint8), affine=pair.fixed.affine)
        else:  # a label map: argmax with the background, written back with the user's label values
            label_map = to_label_map(warped_soft, pair.label_values)
            result.warped_label = MetaTensor(label_map, affine=pair.fixed.affine)
            warped_lab = to_one_hot(label_map, pair.label_values)
        if "fixed_label" in pair.labels:
            zero = 0 * result.ddf
            before = mov_lab if pair.same_grid else _warp(pair, mov_lab.as_tensor()[None], zero, "bilinear")[0]
            found = label_metrics(before, pair.labels["fixed_label"], warped_lab)
            if pair.label_values is not None:  # Dice named by label value: dice_label{value}_...
                found = {_rename(k, pair.label_values): v for k, v in found.items()}
            metrics.update(found)
    metrics.update(deformation_metrics(result.ddf))
    moving_landmarks, fixed_landmarks, space = landmarks
    if moving_landmarks is not None and fixed_landmarks is not None:
        moving_affine = affine_nd(pair.moving.affine, pair.ndim)
        shape = tuple(pair.moving.shape[1:])
        metrics.update(landmark_metrics(result, moving_landmarks, fixed_landmarks, moving_affine, space, shape))
    return metrics


def _rename(key: str, values: tuple[int, ...]) -> str:
    """``dice_label{i}_x`` (channel index) -> ``dice_label{values[i]}_x`` (label value)."""
    index, tail = key[len("dice_label") :].split("_", 1)
    return f"dice_label{values[int(index)]}_{tail}"


def resolve_device(device: str | torch.device | None) -> torch.device:
    """``device`` as a ``torch.device`` (default: CUDA when available, else CPU).

    Raises:
        ValueError: for a name torch does not know (e.g. ``gpu0``) or a CUDA device this torch build or machine lacks.
    """
    if device is None:
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError) as err:
        raise ValueError(
            f"device: {device!r} is not a device name (expected 'cpu', 'cuda' or 'cuda:N'): {err}"
        ) from None
    if dev.type == "cuda" and (not torch.cuda.is_available() or (dev.index or 0) >= torch.cuda.device_count()):
        built = "this torch build has no CUDA" if torch.version.cuda is None else "no such CUDA device is visible"
        raise ValueError(f"device: {device!r} is not available ({built}); use --device cpu.")
    return dev


def _resolve_model(bundle, network, spatial_size, anti_aliasing: bool, dev: torch.device) -> BundleModel | None:
    if isinstance(bundle, BundleModel):
        return bundle
    if bundle is not None:
        return load_bundle(bundle, device=dev)
    if network is not None:
        if spatial_size is None:
            raise ValueError("register: a network needs spatial_size (the grid it was trained on).")
        return BundleModel(
            network=network.to(dev).eval(),
            spatial_size=tuple(int(s) for s in spatial_size),
            anti_aliasing=bool(anti_aliasing),
        )
    return None


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
    spatial_dims: int | None = None,
    stages: Sequence[str] | str | None = None,
    similarity: str = "lncc",
    transform: str = "bspline",
    initialisation: str = "moments",
    inverse: bool = False,
    progress: bool = False,
) -> RegistrationResult:
    """Register a moving image to a fixed image, with a trained network or, without one, by optimisation.

    With a ``bundle`` (or a ``network`` and its ``spatial_size``): resample the moving image (and label) onto the
    fixed grid in world coordinates when the grids differ; min-max normalise both to [0, 1]; resize to the network
    grid (``align_corners=True``; with anti-aliasing, a Gaussian low-pass first and min-max again after it, as the
    training preprocessing); predict the DDF; optionally refine it (``instance_optimisation``); resize the DDF to the
    fixed native grid (:func:`~monai_reg_ext.resize_ddf`); warp the moving image (in its own intensities) and label.

    Without either: the default pipeline of :func:`monai_reg_ext.optimise.register_images` (``docs/optimisation.md``):
    initial alignment (centres of mass), affine coarse to fine, then deformable coarse to fine; the DDF includes the
    affine part, ``result.theta`` holds the affine alone.

    Args:
        moving: the image to deform (file path, array ``(*S)``/``(C, *S)`` or ``MetaTensor``).
        fixed: the reference image; its grid and affine define every output.
        bundle: a bundle folder (``configs/inference.json`` + ``models/model.pt``) or a loaded :class:`BundleModel`.
        moving_label, fixed_label: optional labels for Dice: one-hot ``(L, *S)`` (or ``(*S)``) in [0, 1], or integer
            label maps (values 0..K, or a 0/255 mask; Dice per label value, ``dice_label{value}_after``, and the
            warped label is written back as a label map).
        moving_landmarks, fixed_landmarks: optional corresponding points (CSV/JSON files or ``(N, D)`` arrays) for TRE.
        landmark_space: ``"voxel"`` (indices of each image) or ``"physical"`` (world RAS mm) for the landmark files.
        device: where to run (default: CUDA when available, else CPU).
        network: a network to use instead of a bundle (``network(moving, fixed) -> {"ddf": ...}``), with
            ``spatial_size``.
        spatial_size: the network grid when ``network`` is given.
        instance_optimisation: iterations refining the network's DDF on the network grid
            (:func:`monai_reg_ext.optimise.instance_optimise`) with the bundle's image loss and regulariser
            (:func:`~monai_reg_ext.api.settings.instance_optimisation_settings`); 0: none.
        io_kwargs: extra :func:`~monai_reg_ext.optimise.instance_optimise` arguments (override the bundle's).
        anti_aliasing: low-pass the images before downsampling them to ``spatial_size`` when ``network`` is given (a
            bundle carries its own setting, :attr:`BundleModel.anti_aliasing`).
        spatial_dims: 2 or 3 for registration without a network (default 3).
        stages: without a network: ``("affine", "deformable")`` (default), ``"affine"`` or ``"deformable"``. With a
            network: pipeline stages around it (:func:`network_stages`; default: the inference config's
            ``registration_stages``, else none): ``"affine"`` before it, ``"deformable"`` refinement after it.
        similarity: without a network: ``"lncc"``, ``"mi"``, ``"mind"``, ``"ngf"`` or ``"ssd"``.
        transform: without a network: the deformable model, ``"bspline"``, ``"ddf"`` or ``"dvf"`` (diffeomorphic).
        initialisation: without a network: ``"moments"``, ``"centres"`` or ``"none"``.
        inverse: also compute the inverse DDF (fixed-point inversion) and its inverse-consistency error (voxels).
        progress: show a progress bar over levels and iterations (registration without a network).

    Returns:
        A :class:`RegistrationResult`; call ``.save(output_dir)`` to write NIfTI files, metrics and a PNG.
    """
    dev = resolve_device(device)
    model = _resolve_model(bundle, network, spatial_size, anti_aliasing, dev)
    if isinstance(instance_optimisation, bool) or int(instance_optimisation) != instance_optimisation:
        raise ValueError(f"register: instance_optimisation must be an int >= 0, got {instance_optimisation!r}.")
    if instance_optimisation < 0:
        raise ValueError(f"register: instance_optimisation must be an int >= 0, got {instance_optimisation}.")
    ndim = len(model.spatial_size) if model is not None else int(spatial_dims or 3)
    pair = prepare_inputs(moving, fixed, ndim, moving_label, fixed_label, 1 if model is not None else MIN_VOXELS)
    start = time.perf_counter()
    theta = None
    options = {"similarity": similarity, "transform": transform, "initialisation": initialisation}
    if model is not None:
        model.network.to(dev)
        names = network_stages(model, stages)
        if "affine" not in names:  # with the affine stage, the pipeline checks the overlap after its alignment
            check_world_overlap(pair, describe_pair(moving, fixed))
        if names:
            ddf, theta, extra = predict_with_stages(
                model, pair, dev, names, options, int(instance_optimisation), io_kwargs, progress
            )
        else:
            ddf, extra = predict_network(model, pair, dev, int(instance_optimisation), io_kwargs)
    else:
        stages = ("affine", "deformable") if stages is None else stages
        try:
            optimised, extra = optimise_pair(pair, dev, {**options, "stages": stages}, progress=progress)
        except ValueError as err:  # e.g. no overlap after the initial alignment: name the files
            raise ValueError(f"{describe_pair(moving, fixed)}: {err}") from err
        ddf, theta = optimised.ddf, optimised.theta
    ddf, warped = to_native(pair, ddf, dev)
    seconds = time.perf_counter() - start
    given = (moving, fixed, moving_label, fixed_label, moving_landmarks, fixed_landmarks)
    result = RegistrationResult(
        warped_image=MetaTensor(warped.cpu(), affine=pair.fixed.affine),
        ddf=ddf.cpu(),
        fixed=pair.fixed,
        moving_on_fixed=pair.moving_on_fixed,
        seconds=seconds,
        input_paths=tuple(str(x) for x in given if isinstance(x, (str, os.PathLike))),
        theta=None if theta is None else theta[0].cpu(),
    )
    metrics: dict[str, Any] = {"seconds": seconds, **extra}
    if inverse:
        from ..spatial import inverse_consistency_error, invert_ddf

        result.inverse_ddf = invert_ddf(result.ddf[None])[0]
        metrics["inverse_consistency_voxels"] = float(
            inverse_consistency_error(result.ddf[None], result.inverse_ddf[None])[0]
        )
    metrics.update(score(pair, result, (moving_landmarks, fixed_landmarks, landmark_space)))
    result.metrics = metrics
    return result
