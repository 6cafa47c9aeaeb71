"""Registration methods as evaluation plug-ins: a method maps a :class:`~.pairs.Pair` to a DDF on its fixed grid.

A method is any callable ``method(pair) -> MethodOutput``. The DDF is ``(1, D, *S)`` in voxels of the pair's fixed
grid, pull convention (``docs/conventions.md``), so one scoring code path serves every method. Built here: the
identity, the known true DDF, a network on the pair's tensors, :func:`monai_reg_ext.register` on the pair's files
(optionally with instance optimisation), bundle-free :func:`monai_reg_ext.register` (the default pipeline),
optimisation-based registration, and DDFs computed beforehand. Classical
peers (ANTs, elastix, greedy) are optional plug-ins in :mod:`.peers`; :func:`select_methods` builds a method table
from names and skips peers whose package is missing.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from ..bundle import BundleModel
from .pairs import Pair

__all__ = [
    "MethodOutput",
    "Method",
    "identity",
    "true_ddf",
    "network",
    "register_bundle",
    "register_pipeline",
    "PIPELINE_OPTIONS",
    "optimisation",
    "precomputed",
    "select_methods",
]


@dataclass
class MethodOutput:
    """What a method returns for one pair.

    Attributes:
        ddf: ``(1, D, *S)`` DDF in voxels of the pair's fixed grid (pull).
        seconds: wall time of the registration (``nan`` when not meaningful, e.g. the true DDF).
        identity: the DDF is exactly zero (scoring then uses the moving image and label unwarped).
        warped_image: the method's own warped moving image ``(1, C, *S)`` (e.g. a network's ``pred_fixed_image``);
            None: scoring warps ``pair.moving_image`` with ``ddf``.
        extras: further numbers for the result row (``network_seconds``, ``cpu_seconds``, ``peer_warp_mae``...).
        cache: warped labels/images shared by the metrics of one scoring.
    """

    ddf: torch.Tensor
    seconds: float
    identity: bool = False
    warped_image: torch.Tensor | None = None
    extras: dict[str, float] = field(default_factory=dict)
    cache: dict[str, Any] = field(default_factory=dict, repr=False)


Method = Callable[[Pair], MethodOutput]


def identity() -> Method:
    """No registration: a zero DDF, 0 seconds."""

    def run(pair: Pair) -> MethodOutput:
        shape = (1, len(pair.spatial_shape), *pair.spatial_shape)
        return MethodOutput(torch.zeros(shape, dtype=pair.fixed_image.dtype), 0.0, identity=True)

    return run


def true_ddf() -> Method:
    """The pair's known DDF (the ceiling of a label protocol); seconds ``nan``.

    Raises:
        ValueError: (when called) a pair without a true DDF.
    """

    def run(pair: Pair) -> MethodOutput:
        if pair.true_ddf is None:
            raise ValueError(f"pair {pair.name!r}: method 'true_ddf' needs a true DDF in the pairs file ('ddf').")
        return MethodOutput(pair.true_ddf, float("nan"))

    return run


def network(model: BundleModel | nn.Module, with_label: bool = False) -> Method:
    """A registration network run on the pair's tensors (already on the network grid, e.g. :func:`preprocess_pair`).

    ``seconds`` is the forward call (DDF and warping). ``warped_image`` is the network's ``pred_fixed_image``.

    Args:
        model: a loaded bundle (:func:`monai_reg_ext.bundle.load_bundle`) or a network ``net(moving, fixed)``
            returning a dict with ``ddf`` (or the DDF itself).
        with_label: also pass ``moving_label`` (the network then warps it too, inside the timed call).
    """
    net = model.network if isinstance(model, BundleModel) else model

    @torch.no_grad()
    def run(pair: Pair) -> MethodOutput:
        dev = next(net.parameters()).device
        moving, fixed = pair.moving_image.float().to(dev), pair.fixed_image.float().to(dev)
        kwargs = {"moving_label": pair.moving_label.float().to(dev)} if with_label else {}
        start = time.perf_counter()
        out = net(moving, fixed, **kwargs)
        seconds = time.perf_counter() - start
        ddf = out["ddf"] if isinstance(out, dict) else out
        warped = out.get("pred_fixed_image") if isinstance(out, dict) else None
        return MethodOutput(ddf.cpu(), seconds, warped_image=None if warped is None else warped.cpu())

    return run


def register_bundle(
    model: BundleModel,
    device: str | torch.device = "cpu",
    instance_optimisation: int = 0,
    stages: Sequence[str] | str | None = None,
) -> Method:
    """:func:`monai_reg_ext.register` on the pair's moving and fixed files (the ``monai-reg register`` path).

    ``seconds`` is the wall time of the whole call (reading, resampling, network, DDF resize, warping); ``extras``
    hold ``network_seconds`` (what ``register`` reports) and ``cpu_seconds`` (process CPU time of the same span).
    The DDF is on the fixed image's native grid: score it on :func:`load_pair` pairs.

    Args:
        model: the loaded bundle.
        device: where the network runs.
        instance_optimisation: iterations of instance optimisation after the network (0: none).
        stages: pipeline stages around the network (``"affine"`` before it, ``"deformable"`` after it); default:
            the bundle's ``registration_stages``.
    """
    from ..api import register

    def run(pair: Pair) -> MethodOutput:
        if pair.spec is None:
            raise ValueError(f"pair {pair.name!r}: register_bundle needs the pair's files (Pair.spec).")
        start, cpu = time.perf_counter(), time.process_time()
        result = register(
            pair.spec.moving,
            pair.spec.fixed,
            bundle=model,
            device=device,
            instance_optimisation=int(instance_optimisation),
            stages=stages,
        )
        seconds, cpu = time.perf_counter() - start, time.process_time() - cpu
        extras = {"network_seconds": float(result.seconds), "cpu_seconds": cpu}
        warped = result.warped_image.as_tensor()[None]
        return MethodOutput(result.ddf.detach().cpu()[None], seconds, warped_image=warped, extras=extras)

    return run


PIPELINE_OPTIONS = ("stages", "similarity", "transform", "initialisation")
"""Options of :func:`register_pipeline` that :func:`monai_reg_ext.register` takes itself; any other option (``levels``,
``iterations``, ``affine_levels``, ``affine_iterations``, ``control_point_spacing``, ``reg_weight``, ``tolerance``...,
see :func:`monai_reg_ext.optimise.register_images`) runs ``register``'s own steps with it."""


def register_pipeline(device: str | torch.device = "cpu", **options: Any) -> Method:
    """Bundle-free :func:`monai_reg_ext.register` on the pair's moving and fixed files (the ``monai-reg register``
    path without ``--bundle``: initial alignment, affine, deformable, ``docs/optimisation.md``).

    ``seconds`` is the wall time of the whole call (reading, registration, DDF on the fixed grid, warping); ``extras``
    hold ``cpu_seconds`` (process CPU time of the same span) and the seconds of each pipeline step
    (``initial_seconds``, ``affine_seconds``, ``deformable_seconds``). The DDF is on the fixed image's native grid
    (affine part included): score it on :func:`load_pair` pairs.

    Args:
        device: where the optimisation runs.
        options: with only :data:`PIPELINE_OPTIONS` (``stages``, ``similarity``, ``transform``, ``initialisation``)
            ``register`` itself is called with them. Schedule options that ``register`` does not take (``levels``,
            ``iterations``, ``control_point_spacing``...) run the same steps as ``register``
            (:func:`~monai_reg_ext.api.register.prepare_inputs`, :func:`~monai_reg_ext.api.register.optimise_pair`,
            :func:`~monai_reg_ext.api.register.to_native`) with them, without the label and deformation scoring;
            ``extras`` then also hold the Adam iterations run per stage (``affine_iterations``,
            ``deformable_iterations``).
    """
    from ..api import register
    from ..api.register import MIN_VOXELS, optimise_pair, prepare_inputs, to_native

    dev = torch.device(device)
    direct = set(options) <= set(PIPELINE_OPTIONS)

    def run(pair: Pair) -> MethodOutput:
        if pair.spec is None:
            raise ValueError(f"pair {pair.name!r}: register_pipeline needs the pair's files (Pair.spec).")
        ndim = len(pair.spatial_shape)
        extras: dict[str, float] = {}
        start, cpu = time.perf_counter(), time.process_time()
        if direct:
            result = register(pair.spec.moving, pair.spec.fixed, device=dev, spatial_dims=ndim, **options)
            ddf, warped = result.ddf[None], result.warped_image.as_tensor()[None]
            steps = result.metrics
        else:
            prepared = prepare_inputs(pair.spec.moving, pair.spec.fixed, ndim, None, None, MIN_VOXELS)
            optimised, steps = optimise_pair(prepared, dev, dict(options))
            ddf, warped = to_native(prepared, optimised.ddf, dev)
            ddf, warped = ddf[None], warped[None]
            extras.update({f"{k}_iterations": float(v.iterations) for k, v in optimised.stages.items()})
        seconds, cpu = time.perf_counter() - start, time.process_time() - cpu
        extras["cpu_seconds"] = cpu
        extras.update({k: float(v) for k, v in steps.items() if k.endswith("_seconds") and k != "seconds"})
        return MethodOutput(ddf.detach().cpu().float(), seconds, warped_image=warped.detach().cpu(), extras=extras)

    return run


def optimisation(**kwargs: Any) -> Method:
    """Registration by optimisation of the pair's tensors (:func:`monai_reg_ext.optimise.register_by_optimisation`
    with ``kwargs``: transform, image loss, levels, iterations...); ``extras`` hold the final loss and iterations."""
    from ..optimise import register_by_optimisation

    def run(pair: Pair) -> MethodOutput:
        start = time.perf_counter()
        result = register_by_optimisation(pair.moving_image.float(), pair.fixed_image.float(), **kwargs)
        seconds = time.perf_counter() - start
        extras = {"loss_final": float(result.final_loss), "iterations": float(result.iterations)}
        return MethodOutput(result.ddf.detach().cpu(), seconds, extras=extras)

    return run


def precomputed(ddfs: Mapping[str, torch.Tensor], seconds: Mapping[str, float] | float = float("nan")) -> Method:
    """DDFs computed beforehand (e.g. a network run on a batch of pairs), looked up by ``pair.name``.

    Args:
        ddfs: pair name -> ``(1, D, *S)`` DDF.
        seconds: pair name -> seconds, or one value for every pair.

    Raises:
        KeyError: (when called) a pair whose name has no DDF.
    """

    def run(pair: Pair) -> MethodOutput:
        if pair.name not in ddfs:
            raise KeyError(f"precomputed: no DDF for pair {pair.name!r}.")
        sec = seconds.get(pair.name, float("nan")) if isinstance(seconds, Mapping) else float(seconds)
        return MethodOutput(ddfs[pair.name], float(sec))

    return run


_NETWORK = re.compile(r"^network(?::(?P<name>[^+]+))?(?:\+io(?P<io>\d+))?$")
_PIPELINE = re.compile(r"^pipeline(?::(?P<similarity>\w+))?$")


def select_methods(
    names: Sequence[str],
    models: Mapping[str, BundleModel] | None = None,
    device: str | torch.device = "cpu",
    log: Callable[[str], None] | None = print,
) -> tuple[dict[str, Method], dict[str, str]]:
    """Build methods from names; optional peers whose package cannot be imported are skipped with a note.

    Names: ``none``; ``true_ddf``; ``network`` (the first of ``models``) or ``network:<name>``, each optionally
    ``+io<N>`` (N iterations of instance optimisation), all through :func:`register_bundle`; ``pipeline`` or
    ``pipeline:<similarity>`` (e.g. ``pipeline:mi``): bundle-free registration with its defaults
    (:func:`register_pipeline`); a peer of :data:`.peers.PEERS` (``ants_syn``, ``ants_syn_full``,
    ``elastix_bspline``, ``greedy``, ``greedy_nmi``).

    Args:
        names: the methods, in the order of the results.
        models: loaded bundles by name, for the network methods.
        device: where networks run.
        log: where the skip notes go (None: silent).

    Returns:
        ``(methods, skipped)``: name -> method, and name -> why it was skipped.

    Raises:
        ValueError: an unknown name, or a network name not in ``models``.
    """
    from .peers import PEERS, peer_available, peer_method

    models = dict(models or {})
    methods: dict[str, Method] = {}
    skipped: dict[str, str] = {}
    for name in names:
        match, pipeline = _NETWORK.match(name), _PIPELINE.match(name)
        if name == "none":
            methods[name] = identity()
        elif name == "true_ddf":
            methods[name] = true_ddf()
        elif match:
            key = match["name"] or next(iter(models), None)
            if key not in models:
                raise ValueError(f"method {name!r}: expected a network among {sorted(models)}.")
            methods[name] = register_bundle(models[key], device, int(match["io"] or 0))
        elif pipeline:
            similarity = pipeline["similarity"]
            methods[name] = register_pipeline(device, **({"similarity": similarity} if similarity else {}))
        elif name in PEERS:
            ok, why = peer_available(name)
            if ok:
                methods[name] = peer_method(name)
            else:
                skipped[name] = why
                if log is not None:
                    log(f"note: skipping {name}: its package is not importable ({why}).")
        else:
            known = ["none", "true_ddf", "network[:NAME][+ioN]", "pipeline[:SIMILARITY]", *PEERS]
            raise ValueError(f"unknown method {name!r}; choose from {known}.")
    return methods, skipped
