"""Evaluate the ``grouped_us_echo_2d`` network on held-out groups: similarity, folding and cycle consistency.

No labels exist for the echo cine, so the network is judged by

- image similarity of the warped moving frame and the fixed frame, before (identity) and after registration: LNCC
  (window 9, higher is better) and SSD (mean squared difference of [0, 1] intensities, lower is better), over every
  ordered pair of frames within each held-out group;
- the folding fraction (pixels with Jacobian determinant <= 0) and the SD of the log Jacobian;
- **cycle consistency**: the DDFs around a loop of frames ``f_a -> f_b -> f_c -> f_a`` (and ``f_a -> f_b -> f_a``)
  composed with :func:`monai_reg_ext.compose_ddf` should give the identity; the mean norm of the composed DDF inside
  the ultrasound fan is the residual displacement in pixels (0 for a perfectly consistent network);
- the displacement predicted for a frame registered to itself (should be 0).

Usage (from the repository root)::

    python bundles/grouped_us_echo_2d/scripts/evaluate_echo.py            # shipped weights, test split
    python bundles/grouped_us_echo_2d/scripts/evaluate_echo.py --weights bundles/grouped_us_echo_2d/runs/model.pt

Writes ``docs/results/results.json`` and ``docs/results/held_out_case.png`` (override with ``--output``).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from scipy import ndimage

from monai_reg_ext import compose_ddf, warp_image
from monai_reg_ext.bundle import load_bundle
from monai_reg_ext.metrics import folding_fraction, image_lncc, image_ssd, sd_log_jacobian
from monai_reg_ext.transforms import registration_preprocessing

BUNDLE = Path(__file__).resolve().parents[1]

__all__ = ["compose_cycle", "cycle_residual", "fan_mask", "load_group", "evaluate", "main"]


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


def _stats(values) -> dict:
    v = np.asarray(list(values), dtype=float)
    return {"mean": round(float(v.mean()), 5), "std": round(float(v.std()), 5), "n": int(v.size)}


@torch.no_grad()
def _all_ddfs(net, frames: torch.Tensor, batch: int) -> dict[tuple[int, int], torch.Tensor]:
    pairs = [(i, j) for i in range(len(frames)) for j in range(len(frames)) if i != j]
    out = {}
    for k in range(0, len(pairs), batch):
        chunk = pairs[k : k + batch]
        moving = torch.stack([frames[i] for i, _ in chunk])
        fixed = torch.stack([frames[j] for _, j in chunk])
        ddf = net(moving, fixed)["ddf"]
        for n, p in enumerate(chunk):
            out[p] = ddf[n : n + 1]
    return out


def evaluate(
    bundle: str | Path = BUNDLE,
    weights: str | Path | None = None,
    split: str = "test",
    output: str | Path | None = None,
    steps: Sequence[int] = (1, 3, 5),
    batch: int = 12,
    figure: bool = True,
) -> dict:
    """Run the evaluation described in the module docstring; returns (and writes) the results dict."""
    bundle = Path(bundle)
    model = load_bundle(bundle, weights=weights)
    net, spatial_size = model.network.eval(), model.spatial_size
    groups = sorted(p for p in (bundle / "data" / split / "images").iterdir() if p.is_dir())
    if not groups:
        raise FileNotFoundError(f"no groups in {bundle / 'data' / split / 'images'}")
    pair_rows, cycle_rows, self_rows, fig_case = [], [], [], None
    t0 = time.time()
    for group in groups:
        names, frames = load_group(group, spatial_size)
        mask = fan_mask(frames)
        ddfs = _all_ddfs(net, frames, batch)
        for (i, j), ddf in ddfs.items():
            moving, fixed = frames[i : i + 1], frames[j : j + 1]
            warped = warp_image(moving, ddf)
            norm = ddf.norm(dim=1)[0]
            pair_rows.append(
                {
                    "group": group.name,
                    "moving": names[i],
                    "fixed": names[j],
                    "gap": j - i,
                    "lncc_before": float(image_lncc(moving, fixed, kernel_size=9)),
                    "lncc_after": float(image_lncc(warped, fixed, kernel_size=9)),
                    "ssd_before": float(image_ssd(moving, fixed)),
                    "ssd_after": float(image_ssd(warped, fixed)),
                    "folding_fraction": float(folding_fraction(ddf)),
                    "sd_log_jacobian": float(sd_log_jacobian(ddf)),
                    "mean_displacement_px_in_fan": float(norm[mask].mean()),
                }
            )
        with torch.no_grad():  # a frame registered to itself should give a zero DDF
            for k in range(0, len(frames), batch):
                self_ddf = net(frames[k : k + batch], frames[k : k + batch])["ddf"]
                for n_, d in enumerate(self_ddf):
                    self_rows.append(
                        {
                            "group": group.name,
                            "frame": names[k + n_],
                            "self_pair_displacement_px_in_fan": float(d.norm(dim=0)[mask].mean()),
                            "self_pair_mean_shift_px_in_fan": [float(v) for v in d[:, mask].mean(1)],
                        }
                    )
        n = len(frames)
        for s in steps:
            for a in range(n - 2 * s):
                b, c = a + s, a + 2 * s
                legs3 = [ddfs[(a, b)], ddfs[(b, c)], ddfs[(c, a)]]
                legs2 = [ddfs[(a, b)], ddfs[(b, a)]]
                leg_norm = float(np.mean([float(d.norm(dim=1)[0][mask].mean()) for d in legs3]))
                cycle_rows.append(
                    {
                        "group": group.name,
                        "frames": [names[a], names[b], names[c]],
                        "step": s,
                        "residual_3cycle_px_in_fan": float(cycle_residual(legs3, mask)),
                        "residual_2cycle_px_in_fan": float(cycle_residual(legs2, mask)),
                        "residual_3cycle_px_all": float(cycle_residual(legs3)),
                        "mean_leg_displacement_px_in_fan": leg_norm,
                    }
                )
        if fig_case is None:
            a, s = 0, max(steps)
            b, c = a + s, a + 2 * s
            fig_case = {
                "group": group.name,
                "names": [names[a], names[b], names[c]],
                "frames": frames,
                "idx": (a, b, c),
                "ddf_ab": ddfs[(a, b)],
                "cycle": compose_cycle([ddfs[(a, b)], ddfs[(b, c)], ddfs[(c, a)]]),
                "mask": mask,
            }
    seconds = time.time() - t0

    summary = {k: _stats(r[k] for r in pair_rows) for k in pair_rows[0] if k not in ("group", "moving", "fixed", "gap")}
    cycles = {k: _stats(r[k] for r in cycle_rows) for k in cycle_rows[0] if k not in ("group", "frames", "step")}
    per_step = {
        str(s): {
            k: _stats(r[k] for r in cycle_rows if r["step"] == s)["mean"]
            for k in ("residual_3cycle_px_in_fan", "residual_2cycle_px_in_fan", "mean_leg_displacement_px_in_fan")
        }
        for s in steps
    }
    results = {
        "description": (
            "Held-out groups of the real echo cine (every ordered pair of frames within each group). lncc: window 9, "
            "higher is better; ssd: mean squared difference of [0, 1] intensities; folding_fraction: share of pixels "
            "with Jacobian determinant <= 0; cycles: frames (a, a+s, a+2s) of one group, DDFs a->b, b->c, c->a "
            "composed with compose_ddf (3-cycle) and a->b, b->a (2-cycle); residual = mean norm of the composed DDF "
            "in pixels (1 pixel = 2.042 mm) inside the ultrasound fan ('all': whole image)."
        ),
        "weights": str(Path(weights).name) if weights else "models/model.pt",
        "split": split,
        "groups": [g.name for g in groups],
        "n_pairs": len(pair_rows),
        "n_cycles": len(cycle_rows),
        "seconds": round(seconds, 1),
        "threads": torch.get_num_threads(),
        "pairs_summary": summary,
        "cycles_summary": cycles,
        "cycles_by_step": per_step,
        "self_pairs_summary": {
            "self_pair_displacement_px_in_fan": _stats(r["self_pair_displacement_px_in_fan"] for r in self_rows),
            "self_pair_mean_shift_px_in_fan": [
                round(float(np.mean([r["self_pair_mean_shift_px_in_fan"][k] for r in self_rows])), 5) for k in range(2)
            ],
        },
        "self_pairs": self_rows,
        "pairs": pair_rows,
        "cycles": cycle_rows,
    }
    out = Path(output) if output is not None else bundle / "docs" / "results"
    out.mkdir(parents=True, exist_ok=True)
    (out / "results.json").write_text(json.dumps(results, indent=1) + "\n")
    if figure and fig_case is not None:
        _figure(fig_case, net, out / "held_out_case.png")
    return results


def _figure(case: dict, net, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    frames, (a, b, _) = case["frames"], case["idx"]
    moving, fixed, ddf = frames[a : a + 1], frames[b : b + 1], case["ddf_ab"]
    warped = warp_image(moving, ddf)
    m, f, w = moving[0, 0].numpy(), fixed[0, 0].numpy(), warped[0, 0].numpy()
    fig, ax = plt.subplots(2, 4, figsize=(16, 7))
    for axis, img, title in (
        (ax[0, 0], m, f"moving {case['names'][0]}"),
        (ax[0, 1], f, f"fixed {case['names'][1]}"),
        (ax[0, 2], w, "warped moving"),
    ):
        axis.imshow(img, cmap="gray", vmin=0, vmax=1)
        axis.set_title(title)
    ax[0, 3].imshow(np.abs(m - f), cmap="magma", vmin=0, vmax=0.5)
    ax[0, 3].set_title(f"|moving - fixed| (SSD {float(image_ssd(moving, fixed)):.4f})")
    ax[1, 0].imshow(np.abs(w - f), cmap="magma", vmin=0, vmax=0.5)
    ax[1, 0].set_title(f"|warped - fixed| (SSD {float(image_ssd(warped, fixed)):.4f})")
    d = ddf[0].numpy()
    ax[1, 1].imshow(f, cmap="gray", vmin=0, vmax=1)
    step = 6
    rows, cols = np.mgrid[0 : f.shape[0] : step, 0 : f.shape[1] : step]
    ax[1, 1].quiver(cols, rows, d[1, ::step, ::step], -d[0, ::step, ::step], color="yellow", angles="xy")
    ax[1, 1].set_title("DDF moving->fixed (arrows, pixels)")
    norm = np.linalg.norm(d, axis=0)
    im = ax[1, 2].imshow(norm, cmap="viridis")
    ax[1, 2].set_title(f"|DDF| (mean in fan {norm[case['mask'].numpy()].mean():.2f} px)")
    fig.colorbar(im, ax=ax[1, 2], fraction=0.04)
    res = case["cycle"][0].norm(dim=0).numpy()
    im = ax[1, 3].imshow(res, cmap="viridis")
    ax[1, 3].contour(case["mask"].numpy(), levels=[0.5], colors="w", linewidths=0.5)
    ax[1, 3].set_title(
        f"3-cycle residual {'->'.join(case['names'])}\n(mean in fan {res[case['mask'].numpy()].mean():.2f} px)"
    )
    fig.colorbar(im, ax=ax[1, 3], fraction=0.04)
    for axis in ax.ravel():
        axis.axis("off")
    fig.suptitle(f"grouped_us_echo_2d, held-out group {case['group']} (real echo cine, 2.04 mm pixels)")
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    plt.close(fig)


def main(argv: Sequence[str] | None = None) -> int:
    """Command line entry point (see the module docstring)."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--bundle", default=str(BUNDLE))
    ap.add_argument("--weights", default=None, help="weights file (default: the bundle's models/model.pt)")
    ap.add_argument("--split", default="test")
    ap.add_argument("--output", default=None, help="output folder (default: <bundle>/docs/results)")
    ap.add_argument(
        "--steps", type=int, nargs="+", default=[1, 3, 5], help="frame steps s of the cycles (a, a+s, a+2s)"
    )
    ap.add_argument("--threads", type=int, default=None)
    args = ap.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    res = evaluate(args.bundle, args.weights, args.split, args.output, args.steps)
    s, c = res["pairs_summary"], res["cycles_summary"]
    print(f"{res['n_pairs']} pairs, {res['n_cycles']} cycles, {res['seconds']} s")
    for k in ("lncc", "ssd"):
        print(f"{k}: before {s[k + '_before']['mean']:.4f} +- {s[k + '_before']['std']:.4f}, "
              f"after {s[k + '_after']['mean']:.4f} +- {s[k + '_after']['std']:.4f}")  # fmt: skip
    print(f"folding fraction {s['folding_fraction']['mean']:.5f}, SDlogJ {s['sd_log_jacobian']['mean']:.4f}")
    print(f"mean displacement in fan {s['mean_displacement_px_in_fan']['mean']:.3f} px")
    for k, v in c.items():
        print(f"{k}: {v['mean']:.4f} +- {v['std']:.4f}")
    print("by step:", json.dumps(res["cycles_by_step"]))
    print("self pairs:", json.dumps(res["self_pairs_summary"]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
