"""Results of a bundle's networks and of classical peers on its held-out pairs: Dice, TRE, folding, seconds per pair.

Used by the lung bundles (``paired_ct_lung``, ``unpaired_ct_lung``); any bundle whose ``data/<split>/pairs.json``
lists moving/fixed images and masks on one grid (optionally landmarks and a true DDF) can use it.

For every pair of ``data/<split>/pairs.json`` and every method, the DDF on the fixed grid (monai-reg convention:
voxels of the fixed grid, pull, ``docs/conventions.md``) is obtained and scored with one code path:

- ``dice``: lung mask Dice, the moving mask warped bilinearly and thresholded at 0.5, against the fixed mask;
- ``tre_mm``: target registration error of the vessel landmarks in mm (``monai_reg_ext.metrics.landmark_tre``:
  fixed landmark ``f`` is carried to ``f + ddf(f)`` and compared with its moving landmark), when the pair has them;
- ``error_mm``: mean ``|R (ddf - ddf_true)|`` in the fixed lungs, when the pair has a true DDF;
- ``folding_pct``: percentage of voxels of the whole grid with Jacobian determinant ``<= 0``; ``sdlogj``: SD of
  ``log J`` (clipped at 1e-9) over the whole grid;
- ``seconds``: wall time of the registration call (network: ``monai_reg_ext.api.register`` on the two files, bundle
  already loaded, one untimed warm-up; peers: the ``ants.registration`` / ``elastix`` call).

Methods: ``none`` (identity), ``network:<name>=<weights>`` (the bundle's network with a weights file relative to the
bundle; with ``--instance-optimisation N`` also the first network refined by N iterations on each pair),
``ants_syn`` (antspyx ``SyN`` defaults), ``elastix_bspline`` (itk-elastix default B-spline map). The peers come
from ``scripts/compare_registration.py`` next to this script.

Usage (from the repository root)::

    OMP_NUM_THREADS=1 python scripts/evaluate_pairs.py --bundle bundles/paired_ct_lung \\
        --splits test val --networks combined=models/model.pt unsupervised=models/model_unsup.pt \\
        --instance-optimisation 50 --methods none ants_syn --update-metadata   # writes <bundle>/docs/results
    OMP_NUM_THREADS=1 python scripts/evaluate_pairs.py --bundle bundles/unpaired_ct_lung \\
        --splits test --networks combined=models/model.pt --instance-optimisation 50 --methods none ants_syn \\
        --update-metadata

Writes ``results.json`` (per pair and mean ± std per split and method), ``results.md`` (tables) and
``figure_<split>_pair_000_{before,after}.png`` (``monai_reg_ext.visualise.save_registration_figure`` on a coronal
slice: moving, fixed, warped, checkerboard, difference, deformed grid; "before" = identity, "after" = the first
network, on the first pair of the first split).
"""

from __future__ import annotations

import argparse
import datetime
import importlib.util
import json
import platform
import sys
import time
from pathlib import Path
from typing import Any

import nibabel as nib
import numpy as np
import torch

from monai_reg_ext.io import read_landmarks
from monai_reg_ext.metrics import folding_fraction, landmark_tre, sd_log_jacobian
from monai_reg_ext.spatial import warp_image

__all__ = ["load_pair", "score", "evaluate", "main"]

METRICS = ("dice", "tre_mm", "error_mm", "folding_pct", "sdlogj", "seconds")


def _compare_module():
    """``scripts/compare_registration.py`` of the repository (ANTs / elastix runners and their DDF extraction)."""
    path = Path(__file__).resolve().parent / "compare_registration.py"
    if not path.is_file():
        raise FileNotFoundError(f"the peer methods need the repository's scripts/compare_registration.py ({path}).")
    spec = importlib.util.spec_from_file_location("compare_registration", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules["compare_registration"] = module
    spec.loader.exec_module(module)
    return module


def _load(path: Path) -> tuple[np.ndarray, np.ndarray]:
    img = nib.load(str(path))
    return np.asarray(img.get_fdata(dtype=np.float64)), np.asarray(img.affine, dtype=np.float64)


def load_pair(item: dict, root: Path) -> dict[str, Any]:
    """Load one ``pairs.json`` entry (paths relative to ``root``).

    Returns a dict with ``paths``, ``moving``/``fixed`` ``(*S)`` HU arrays, ``moving_label``/``fixed_label``
    ``(*S)`` bool lung masks, ``affine`` (fixed), ``mask`` (fixed lungs), optional ``ddf_true`` ``(3, *S)`` voxels,
    ``moving_landmarks``/``fixed_landmarks`` ``(N, 3)`` voxels.

    Raises:
        FileNotFoundError: naming the entry key and the missing file.
        ValueError: when moving and fixed are not on one grid.
    """
    keys = ("moving", "fixed", "moving_label", "fixed_label", "ddf", "moving_landmarks", "fixed_landmarks")
    paths = {k: root / item[k] for k in keys if item.get(k)}
    for k in ("moving", "fixed", "moving_label", "fixed_label"):
        if k not in paths:
            raise ValueError(f"{root / 'pairs.json'}: an entry lacks {k!r}; it has {sorted(item)}.")
    for k, p in paths.items():
        if not p.is_file():
            raise FileNotFoundError(f"pair entry {k!r}: file {str(p)!r} does not exist.")
    moving, aff_m = _load(paths["moving"])
    fixed, aff_f = _load(paths["fixed"])
    if moving.shape != fixed.shape or not np.allclose(aff_m, aff_f, atol=1e-4):
        raise ValueError(f"{paths['moving']} and {paths['fixed']}: moving and fixed must share one grid.")
    pair = {
        "paths": paths,
        "moving": moving,
        "fixed": fixed,
        "moving_label": _load(paths["moving_label"])[0] > 0.5,
        "fixed_label": _load(paths["fixed_label"])[0] > 0.5,
        "affine": aff_f,
        "name": Path(item["fixed"]).name.split(".")[0],
        "subject": item.get("subject", ""),
    }
    pair["mask"] = pair["fixed_label"]
    pair["ddf_true"] = np.moveaxis(_load(paths["ddf"])[0], -1, 0) if "ddf" in paths else np.zeros((3, *fixed.shape))
    pair["has_true_ddf"] = "ddf" in paths
    if "moving_landmarks" in paths and "fixed_landmarks" in paths:
        pair["moving_landmarks"] = read_landmarks(paths["moving_landmarks"])
        pair["fixed_landmarks"] = read_landmarks(paths["fixed_landmarks"])
    return pair


def score(pair: dict[str, Any], ddf: np.ndarray) -> dict[str, float]:
    """Dice, TRE (mm), displacement error (mm), folding % and SDlogJ of a DDF ``(3, *S)`` (fixed voxels)."""
    t = torch.as_tensor(np.asarray(ddf, dtype=np.float64))[None]
    mov = torch.as_tensor(pair["moving_label"].astype(np.float64))[None, None]
    warped = warp_image(mov, t, mode="bilinear")[0, 0].numpy() > 0.5
    fix = pair["fixed_label"]
    out = {"dice": 2.0 * float((warped & fix).sum()) / max(float(warped.sum() + fix.sum()), 1.0)}
    if "fixed_landmarks" in pair:
        tre = landmark_tre(pair["moving_landmarks"], pair["fixed_landmarks"], t, fixed_affine=pair["affine"])
        out["tre_mm"] = float(tre.mean())
    if pair["has_true_ddf"]:
        diff = np.einsum("ij,j...->i...", pair["affine"][:3, :3], np.asarray(ddf) - pair["ddf_true"])
        out["error_mm"] = float(np.sqrt((diff**2).sum(0))[pair["mask"]].mean())
    out["folding_pct"] = 100.0 * float(folding_fraction(t.float())[0])
    out["sdlogj"] = float(sd_log_jacobian(t.float())[0])
    return out


def _run(method: str, pair: dict[str, Any], models: dict, compare) -> dict[str, Any]:
    if method == "none":
        return {"ddf": np.zeros_like(pair["ddf_true"]), "seconds": 0.0}
    if method.startswith("network:"):
        from monai_reg_ext.api import register

        name, _, io = method.partition("+io")
        model = models[name]
        start = time.perf_counter()
        result = register(
            str(pair["paths"]["moving"]),
            str(pair["paths"]["fixed"]),
            bundle=model,
            device="cpu",
            instance_optimisation=int(io or 0),
        )
        seconds = time.perf_counter() - start
        return {"ddf": result.ddf.detach().cpu().double().numpy(), "seconds": seconds, "warped": result.warped_image}
    return compare.run_method(method, pair)


def _summary(rows: list[dict]) -> dict[str, list[float]]:
    out = {}
    for key in METRICS:
        vals = [r[key] for r in rows if key in r and np.isfinite(r[key])]
        if vals:
            out[key] = [round(float(np.mean(vals)), 4), round(float(np.std(vals)), 4)]
    return out


def evaluate(
    bundle: Path,
    splits: list[str],
    networks: dict[str, str],
    methods: list[str],
    output: Path,
    threads: int = 1,
    instance_optimisation: int = 0,
) -> dict[str, Any]:
    """Run every method on every pair of ``splits``; write results.json, results.md and a figure; return results.

    ``instance_optimisation > 0`` adds the first network followed by that many instance-optimisation iterations
    (``monai_reg_ext.api.register(..., instance_optimisation=N)``) as method ``network:<name>+io<N>``.
    """
    from monai_reg_ext.bundle import load_bundle
    from monai_reg_ext.visualise import save_registration_figure

    torch.set_num_threads(threads)
    compare = _compare_module() if any(not m.startswith(("none", "network:")) for m in methods) else None
    if compare is not None:
        compare.configure_threads(threads)
    models = {f"network:{n}": load_bundle(bundle, device="cpu", weights=bundle / w) for n, w in networks.items()}
    all_methods = ["none", *models]
    if instance_optimisation > 0:
        all_methods.append(f"{next(iter(models))}+io{int(instance_optimisation)}")
    all_methods += [m for m in methods if m != "none"]
    available = []
    for m in all_methods:
        if compare is not None and m in compare.PEERS:
            ok, why = compare._peer_available(m)
            if not ok:
                print(f"note: skipping {m}: {why}", flush=True)
                continue
        available.append(m)
    output.mkdir(parents=True, exist_ok=True)
    results: dict[str, Any] = {"splits": {}, "methods": available}
    figure = None
    for split in splits:
        root = bundle / "data" / split
        items = json.loads((root / "pairs.json").read_text())
        rows: dict[str, list[dict]] = {m: [] for m in available}
        for i, item in enumerate(items):
            pair = load_pair(item, root)
            for m in available:
                if m.startswith("network:") and "+io" not in m and i == 0:
                    _run(m, pair, models, compare)  # untimed warm-up
                res = _run(m, pair, models, compare)
                row = {"pair": pair["name"], "subject": pair["subject"], "seconds": float(res["seconds"])}
                row.update(score(pair, res["ddf"]))
                rows[m].append(row)
                print(split, m, {k: round(v, 4) if isinstance(v, float) else v for k, v in row.items()}, flush=True)
                if figure is None and m.startswith("network:") and "warped" in res:
                    figure = output / f"figure_{split}_{pair['name']}"
                    warped = res["warped"].detach().cpu().numpy()
                    zero = np.zeros_like(res["ddf"])
                    save_registration_figure(
                        f"{figure}_before.png", pair["moving"], pair["fixed"], pair["moving"], zero, 1
                    )
                    save_registration_figure(
                        f"{figure}_after.png", pair["moving"], pair["fixed"], warped, res["ddf"], 1
                    )
        results["splits"][split] = {m: {"pairs": rows[m], "mean_std": _summary(rows[m])} for m in available}
    results["environment"] = {
        "date": datetime.date.today().isoformat(),
        "machine": platform.platform(),
        "processor": platform.processor() or platform.machine(),
        "torch": torch.__version__,
        "threads": threads,
    }
    (output / "results.json").write_text(json.dumps(results, indent=1) + "\n")
    (output / "results.md").write_text(_markdown(results))
    return results


def _fmt(ms: dict, key: str, digits: int = 3) -> str:
    if key not in ms:
        return "–"
    m, s = ms[key]
    return f"{m:.{digits}f} ± {s:.{digits}f}"


def _markdown(results: dict) -> str:
    lines = []
    for split, by_method in results["splits"].items():
        n = len(next(iter(by_method.values()))["pairs"])
        subjects = sorted({r["subject"] for v in by_method.values() for r in v["pairs"]})
        lines += [f"### split `{split}` ({n} pairs; subjects: {', '.join(subjects)})", ""]
        lines += ["| method | Dice (lungs) | TRE (mm) | DDF error in lungs (mm) | folding (%) | SDlogJ | s / pair |"]
        lines += ["|---|---|---|---|---|---|---|"]
        for m, v in by_method.items():
            ms = v["mean_std"]
            name = "no registration" if m == "none" else m.replace("network:", "network, ")
            name = name.replace("+io", " + instance optimisation × ")
            lines.append(
                f"| {name} | {_fmt(ms, 'dice')} | {_fmt(ms, 'tre_mm', 2)} | {_fmt(ms, 'error_mm', 2)} | "
                f"{_fmt(ms, 'folding_pct', 3)} | {_fmt(ms, 'sdlogj', 3)} | {_fmt(ms, 'seconds', 2)} |"
            )
        lines.append("")
    env = results["environment"]
    lines.append(f"Mean ± std over pairs; CPU ({env['processor']}), {env['threads']} thread(s), {env['date']}.")
    return "\n".join(lines) + "\n"


def _update_metadata(bundle: Path, results: dict, split: str, network: str) -> None:
    """Write the ``split`` numbers of ``network`` and of no registration into metadata ``eval_metrics``."""
    meta_path = bundle / "configs" / "metadata.json"
    meta = json.loads(meta_path.read_text())
    by_method = results["splits"][split]
    metrics = {}
    for prefix, method in ((split, f"network:{network}"), ("no_registration", "none")):
        for key, (mean, _) in by_method[method]["mean_std"].items():
            if prefix == "no_registration" and key in ("folding_pct", "sdlogj", "seconds"):
                continue
            metrics[f"{prefix}_mean_{key}"] = round(mean, 4)
    for method, v in by_method.items():
        other_network = method.startswith("network:") and method != f"network:{network}"
        if other_network or method in ("ants_syn", "elastix_bspline"):
            method = method.replace("network:", "").replace("+io", "_io")
            for key in ("dice", "tre_mm", "seconds"):
                if key in v["mean_std"]:
                    metrics[f"{method}_{split}_mean_{key}"] = round(v["mean_std"][key][0], 4)
    meta["eval_metrics"] = metrics
    meta_path.write_text(json.dumps(meta, indent=4) + "\n")


def main(argv: list[str] | None = None) -> int:
    """Command line entry point (see the module docstring)."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--bundle", required=True, help="bundle folder (data/<split>/pairs.json, configs/, models/)")
    ap.add_argument("--splits", nargs="+", default=["test"])
    ap.add_argument(
        "--networks", nargs="+", default=["combined=models/model.pt"], help="name=weights (bundle-relative)"
    )
    ap.add_argument("--methods", nargs="+", default=["none", "ants_syn"], help="none, ants_syn, elastix_bspline")
    ap.add_argument("--output", default=None, help="default: <bundle>/docs/results")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--instance-optimisation", type=int, default=0, help="also run the first network + N iterations")
    ap.add_argument("--update-metadata", action="store_true", help="write the first split's numbers to metadata")
    args = ap.parse_args(argv)
    bundle = Path(args.bundle)
    networks = {}
    for spec in args.networks:
        if "=" not in spec:
            raise ValueError(f"--networks: expected name=weights, got {spec!r}.")
        name, weights = spec.split("=", 1)
        networks[name] = weights
    output = Path(args.output) if args.output else bundle / "docs" / "results"
    results = evaluate(bundle, args.splits, networks, args.methods, output, args.threads, args.instance_optimisation)
    if args.update_metadata:
        _update_metadata(bundle, results, args.splits[0], next(iter(networks)))
    print((output / "results.md").read_text())
    return 0


if __name__ == "__main__":
    sys.exit(main())
