"""Evaluate the ``grouped_us_echo_2d`` network on held-out groups: similarity, folding and cycle consistency.

No labels exist for the echo cine, so the network is judged by

- image similarity of the warped moving frame and the fixed frame, before (identity) and after registration: LNCC
  (window 9, higher is better) and SSD (mean squared difference of [0, 1] intensities, lower is better), over every
  ordered pair of frames within each held-out group;
- the folding fraction (pixels with Jacobian determinant <= 0) and the SD of the log Jacobian;
- **cycle consistency** (a plug-in metric of the pair a -> b that opens a loop): the DDFs around a loop of frames
  ``f_a -> f_b -> f_c -> f_a`` (and ``f_a -> f_b -> f_a``) composed with :func:`monai_reg_ext.compose_ddf` should give
  the identity; the mean norm of the composed DDF inside the ultrasound fan is the residual displacement in pixels
  (0 for a perfectly consistent network);
- the displacement predicted for a frame registered to itself (should be 0).

Usage (from the repository root)::

    python bundles/grouped_us_echo_2d/scripts/evaluate.py --update-metadata   # shipped weights, test split
    python bundles/grouped_us_echo_2d/scripts/evaluate.py --weights bundles/grouped_us_echo_2d/runs/model.pt

Writes ``docs/results/results.json`` and ``docs/results/held_out_case.png`` (override with ``--output``).
"""

from __future__ import annotations

import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import torch
from scipy import ndimage

from monai_reg_ext import compose_ddf
from monai_reg_ext import evaluation as ev
from monai_reg_ext.bundle import load_bundle
from monai_reg_ext.transforms import registration_preprocessing

BUNDLE = Path(__file__).resolve().parents[1]
INFO_KEYS = ("pair", "group", "moving", "fixed", "gap", "a", "n_frames", "seconds")
CYCLE_KEYS = ("residual_3cycle_px_in_fan", "residual_2cycle_px_in_fan", "mean_leg_displacement_px_in_fan")
EVAL_METRICS = ev.eval_metrics_spec(
    {"lncc": "lncc", "ssd": "ssd"},
    {
        "test_folding_fraction": "folding_fraction",
        "test_sd_log_jacobian": "sd_log_jacobian",
        "test_cycle3_residual_px": "residual_3cycle_px_in_fan",
        "test_cycle2_residual_px": "residual_2cycle_px_in_fan",
    },
)
EVAL_METRICS["test_self_pair_displacement_px"] = ("self_pairs", "self_pair_displacement_px_in_fan")
DIGITS = {"test_mean_ssd": 5, "test_folding_fraction": 5, "no_registration_mean_ssd": 5, "test_sd_log_jacobian": 3}
DIGITS.update({k: 3 for k in ("test_cycle3_residual_px", "test_cycle2_residual_px", "test_self_pair_displacement_px")})

__all__ = ["compose_cycle", "cycle_residual", "cycle_metric", "fan_mask", "load_group", "evaluate", "main"]


def compose_cycle(ddfs: Sequence[torch.Tensor]) -> torch.Tensor:
    """Compose the DDFs of a chain of registrations into one DDF (pull semantics, ``docs/conventions.md``).

    ``ddfs[k]`` registers frame ``k`` (moving) to frame ``k + 1`` (fixed): ``warp_image(f_k, ddfs[k]) ~ f_{k+1}``.
    The result ``D`` satisfies ``warp_image(f_0, D) ~ warp_image(...warp_image(f_0, ddfs[0])..., ddfs[-1])``; for a
    closed loop (the last fixed frame is ``f_0``) a consistent network gives ``D ~ 0``.

    Args:
        ddfs: DDFs ``(B, D, *S)`` on one grid, in the order they are applied.
    """
    if not ddfs:
        raise ValueError("compose_cycle: need at least one DDF.")
    composed = ddfs[0]
    for ddf in ddfs[1:]:
        composed = compose_ddf(first=composed, second=ddf)
    return composed


def cycle_residual(ddfs: Sequence[torch.Tensor], mask: torch.Tensor | None = None) -> torch.Tensor:
    """Mean Euclidean norm (pixels) of the composed loop DDF, per batch element, inside ``mask`` (``(*S)``) if given."""
    norm = compose_cycle(ddfs).norm(dim=1)  # (B, *S)
    if mask is None:
        return norm.flatten(1).mean(1)
    m = mask.to(norm.dtype).expand_as(norm)
    return (norm * m).flatten(1).sum(1) / m.flatten(1).sum(1).clamp_min(1.0)


def cycle_metric(ddfs: Mapping[str, torch.Tensor], steps: Sequence[int]) -> ev.Metric:
    """Plug-in metric of the pair ``a -> b`` (``b = a + s``, ``s`` in ``steps``) of a group of ``n`` frames when
    ``a + 2s < n``: residuals of the loops ``a -> b -> c -> a`` and ``a -> b -> a`` (``c = a + 2s``) composed from the
    network's DDFs ``ddfs`` (by pair name), in the fan and everywhere, and the mean displacement of one leg."""

    def metric(pair: ev.Pair, output: ev.MethodOutput) -> dict[str, float]:
        group, a, s, n = pair.info["group"], pair.info["a"], pair.info["gap"], pair.info["n_frames"]
        if output.identity or s not in steps or a + 2 * s >= n:
            return {}
        leg = {(i, j): ddfs[_name(group, i, j)] for i, j in ((a, a + s), (a + s, a + 2 * s), (a + 2 * s, a))}
        leg[(a + s, a)] = ddfs[_name(group, a + s, a)]
        loop3 = [leg[(a, a + s)], leg[(a + s, a + 2 * s)], leg[(a + 2 * s, a)]]
        fan = pair.masks["fan"]
        return {
            "residual_3cycle_px_in_fan": float(cycle_residual(loop3, fan)),
            "residual_2cycle_px_in_fan": float(cycle_residual([leg[(a, a + s)], leg[(a + s, a)]], fan)),
            "residual_3cycle_px_all": float(cycle_residual(loop3)),
            "mean_leg_displacement_px_in_fan": float(np.mean([float(d.norm(dim=1)[0][fan].mean()) for d in loop3])),
        }

    return metric


def mean_shift(pair: ev.Pair, output: ev.MethodOutput) -> dict[str, float]:
    """Plug-in metric: the mean DDF vector (pixels, per axis) inside the fan."""
    shift = output.ddf[0][:, pair.masks["fan"]].mean(1)
    return {f"mean_shift_px_in_fan_axis{k}": float(v) for k, v in enumerate(shift)}


def fan_mask(frames: torch.Tensor, threshold: float = 0.05) -> torch.Tensor:
    """Ultrasound fan of a group: pixels whose maximum over the frames exceeds ``threshold``, holes filled, opened."""
    peak = frames.amax(dim=0)[0].numpy() > threshold
    mask = ndimage.binary_opening(ndimage.binary_fill_holes(peak), iterations=2)
    labels, n = ndimage.label(mask)
    if n > 1:  # keep the largest component (drops small overlay text)
        sizes = ndimage.sum(mask, labels, range(1, n + 1))
        mask = labels == (int(np.argmax(sizes)) + 1)
    return torch.from_numpy(mask)


def load_group(folder: Path, spatial_size: Sequence[int]) -> tuple[list[str], torch.Tensor]:
    """Frames of one group, preprocessed as in training (min-max to [0, 1], resized): ``(names, (T, 1, *S))``."""
    pre = registration_preprocessing(spatial_size, image_keys=("image",), label_keys=("label",))  # no label: skipped
    files = sorted(folder.glob("*.nii*"))
    if len(files) < 3:
        raise ValueError(f"{folder}: a group needs at least 3 frames for cycles, found {len(files)}.")
    frames = [torch.as_tensor(pre({"image": str(f)})["image"]).float() for f in files]
    return [f.name.split(".")[0] for f in files], torch.stack(frames)


def _name(group: str, i: int, j: int) -> str:
    return f"{group}/{i}->{j}"


@torch.no_grad()
def _batched_ddfs(net, frames: torch.Tensor, pairs: list[tuple[int, int]], batch: int) -> list[torch.Tensor]:
    out = []
    for k in range(0, len(pairs), batch):
        chunk = pairs[k : k + batch]
        ddf = net(torch.stack([frames[i] for i, _ in chunk]), torch.stack([frames[j] for _, j in chunk]))["ddf"]
        out += [ddf[n : n + 1] for n in range(len(chunk))]
    return out


def _group_pairs(group: str, names: list[str], frames: torch.Tensor, mask: torch.Tensor, self_pairs: bool):
    n = len(frames)
    idx = [(i, i) for i in range(n)] if self_pairs else [(i, j) for i in range(n) for j in range(n) if i != j]
    pairs = []
    for i, j in idx:
        info = {"group": group, "moving": names[i], "fixed": names[j], "gap": j - i, "a": i, "n_frames": n}
        pair = ev.Pair(_name(group, i, j), frames[i : i + 1], frames[j : j + 1], masks={"fan": mask}, info=info)
        pairs.append(pair)
    return idx, pairs


def evaluate(
    bundle: str | Path = BUNDLE,
    weights: str | Path | None = None,
    split: str = "test",
    output: str | Path | None = None,
    steps: Sequence[int] = (1, 3, 5),
    batch: int = 12,
    figure: bool = True,
    update_metadata: bool = False,
) -> dict:
    """Run the evaluation described in the module docstring; returns (and writes) the results dict."""
    bundle = Path(bundle)
    model = load_bundle(bundle, weights=weights)
    net, spatial_size = model.network.eval(), model.spatial_size
    groups = sorted(p for p in (bundle / "data" / split / "images").iterdir() if p.is_dir())
    if not groups:
        raise FileNotFoundError(f"no groups in {bundle / 'data' / split / 'images'}")
    pairs, self_pairs, ddfs, t0 = [], [], {}, time.time()
    for group in groups:
        names, frames = load_group(group, spatial_size)
        mask = fan_mask(frames)
        for kind in (False, True):
            idx, group_pairs = _group_pairs(group.name, names, frames, mask, self_pairs=kind)
            ddfs.update({p.name: d for p, d in zip(group_pairs, _batched_ddfs(net, frames, idx, batch))})
            (self_pairs if kind else pairs).extend(group_pairs)
    metrics = [ev.image_similarity("lncc", kernel_size=9), ev.image_similarity("ssd"), ev.folding(), ev.sdlogj()]
    metrics += [ev.displacement(mask="fan", key="mean_displacement_px_in_fan"), cycle_metric(ddfs, steps)]
    rows = ev.evaluate_pairs(pairs, {"none": ev.identity(), "network": ev.precomputed(ddfs)}, metrics, log=None)
    self_metrics = [ev.displacement(mask="fan", key="self_pair_displacement_px_in_fan"), mean_shift]
    rows.update(ev.evaluate_pairs(self_pairs, {"self_pairs": ev.precomputed(ddfs)}, self_metrics, log=None))
    by_method = ev.results_by_method(rows, exclude=INFO_KEYS)
    by_method["summary_by_step"] = {
        str(s): ev.summarise([r for r in rows["network"] if r["gap"] == s and CYCLE_KEYS[0] in r], INFO_KEYS)
        for s in steps
    }
    results = {
        "description": (
            "Held-out groups of the real echo cine (every ordered pair of frames within each group). lncc: window 9, "
            "higher is better; ssd: mean squared difference of [0, 1] intensities; folding_fraction: share of pixels "
            "with Jacobian determinant <= 0; cycles: frames (a, a+s, a+2s) of one group, DDFs a->b, b->c, c->a "
            "composed with compose_ddf (3-cycle) and a->b, b->a (2-cycle); residual = mean norm of the composed DDF "
            "in pixels (1 pixel = 2.042 mm) inside the ultrasound fan ('all': whole image); reported on the pair "
            "a->b that opens each loop. self_pairs: each frame registered to itself."
        ),
        "weights": str(Path(weights).name) if weights else "models/model.pt",
        "split": split,
        "groups": [g.name for g in groups],
        "n_pairs": len(pairs),
        "n_cycles": by_method["summary"]["network"][CYCLE_KEYS[0]]["n"],
        "seconds": round(time.time() - t0, 1),
        **by_method,
    }
    out = Path(output) if output is not None else bundle / "docs" / "results"
    eval_metrics = ev.select_eval_metrics(by_method["summary"], EVAL_METRICS)
    metadata = bundle / "configs" / "metadata.json" if update_metadata else None
    ev.publish(out, results, eval_metrics, DIGITS, metadata)
    if figure:
        _figure(pairs, ddfs, max(steps), out / "held_out_case.png")
    return results


def _figure(pairs: list[ev.Pair], ddfs: Mapping[str, torch.Tensor], s: int, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from monai_reg_ext import warp_image
    from monai_reg_ext.metrics import image_ssd

    first = pairs[0]
    group, mask = first.info["group"], first.masks["fan"].numpy()
    by_name = {p.name: p for p in pairs}
    ab = by_name[_name(group, 0, s)]
    names = [ab.info["moving"], ab.info["fixed"], by_name[_name(group, 2 * s, 0)].info["moving"]]
    ddf = ddfs[ab.name]
    warped = warp_image(ab.moving_image, ddf)
    m, f, w = ab.moving_image[0, 0].numpy(), ab.fixed_image[0, 0].numpy(), warped[0, 0].numpy()
    fig, ax = plt.subplots(2, 4, figsize=(16, 7))
    panels = ((ax[0, 0], m, f"moving {names[0]}"), (ax[0, 1], f, f"fixed {names[1]}"), (ax[0, 2], w, "warped moving"))
    for axis, img, title in panels:
        axis.imshow(img, cmap="gray", vmin=0, vmax=1)
        axis.set_title(title)
    ax[0, 3].imshow(np.abs(m - f), cmap="magma", vmin=0, vmax=0.5)
    ax[0, 3].set_title(f"|moving - fixed| (SSD {float(image_ssd(ab.moving_image, ab.fixed_image)):.4f})")
    ax[1, 0].imshow(np.abs(w - f), cmap="magma", vmin=0, vmax=0.5)
    ax[1, 0].set_title(f"|warped - fixed| (SSD {float(image_ssd(warped, ab.fixed_image)):.4f})")
    d = ddf[0].numpy()
    ax[1, 1].imshow(f, cmap="gray", vmin=0, vmax=1)
    rows, cols = np.mgrid[0 : f.shape[0] : 6, 0 : f.shape[1] : 6]
    ax[1, 1].quiver(cols, rows, d[1, ::6, ::6], -d[0, ::6, ::6], color="yellow", angles="xy")
    ax[1, 1].set_title("DDF moving->fixed (arrows, pixels)")
    norm = np.linalg.norm(d, axis=0)
    im = ax[1, 2].imshow(norm, cmap="viridis")
    ax[1, 2].set_title(f"|DDF| (mean in fan {norm[mask].mean():.2f} px)")
    fig.colorbar(im, ax=ax[1, 2], fraction=0.04)
    loop = [ddf, ddfs[_name(group, s, 2 * s)], ddfs[_name(group, 2 * s, 0)]]
    res = compose_cycle(loop)[0].norm(dim=0).numpy()
    im = ax[1, 3].imshow(res, cmap="viridis")
    ax[1, 3].contour(mask, levels=[0.5], colors="w", linewidths=0.5)
    ax[1, 3].set_title(f"3-cycle residual {'->'.join(names)}\n(mean in fan {res[mask].mean():.2f} px)")
    fig.colorbar(im, ax=ax[1, 3], fraction=0.04)
    for axis in ax.ravel():
        axis.axis("off")
    fig.suptitle(f"grouped_us_echo_2d, held-out group {group} (real echo cine, 2.04 mm pixels)")
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    plt.close(fig)


def main(argv: Sequence[str] | None = None) -> int:
    """Command line entry point (see the module docstring)."""
    ap = ev.script_parser(__doc__, BUNDLE)
    ap.add_argument("--split", default="test")
    ap.add_argument(
        "--steps", type=int, nargs="+", default=[1, 3, 5], help="frame steps s of the cycles (a, a+s, a+2s)"
    )
    args = ev.parse_script_args(ap, argv)
    res = evaluate(args.bundle, args.weights, args.split, args.output, args.steps, update_metadata=args.update_metadata)
    print(f"{res['n_pairs']} pairs, {res['n_cycles']} cycles, {res['seconds']} s")
    for method, summary in res["summary"].items():
        print(method, {k: round(v["mean"], 5) for k, v in summary.items()})
    print("by step:", {s: {k: round(v["mean"], 5) for k, v in t.items()} for s, t in res["summary_by_step"].items()})
    print("eval_metrics", res["eval_metrics"])
    return 0


if __name__ == "__main__":
    sys.exit(main())
