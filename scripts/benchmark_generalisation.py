"""Generalisation benchmark (issue 18): the bundles' networks on held-out pairs from sources their training never used.

Every method registers every pair of a set in one run, with the same threads, interleaved pair by pair:

- ``none``: no registration;
- ``<name>``: a network bundle through :func:`monai_reg_ext.register` (the ``monai-reg register --bundle`` path) with
  the weights ``<name>`` stands for (``--weights``), and ``<name>+affine`` the same after the pipeline's affine stage
  (``stages=("affine",)``);
- ``affine``: the bundle-free pipeline's affine stage alone (``register(moving, fixed, stages="affine")``), i.e. what
  ``+affine`` puts in front of a network;
- ``ants_syn``: antspyx ``SyN`` with its defaults (a reference, as in ``scripts/benchmark_pairwise.py``).

Sets (``--sets``):

- ``brain_unseen`` (network: ``unpaired_mr_brain``): :func:`benchmark_pairwise.build_pairs`: the real MNI ICBM152
  2009a T1 template at 2 mm (the bundle trains at 2.5 mm) under an affine (rotation 8 degrees, translation 6 mm,
  scale 1.05) + smooth deformation, bias field and Rician noise; GM/WM Dice (argmax), error in mm inside the brain.
- ``lung_unseen`` (network: ``paired_ct_lung``): built here (:func:`build_lung_pairs`): the **real CT of the patient
  that the bundle holds out** (``pyrad_lung2``, the fixed images of its ``data/test``) as the moving image, the fixed
  image the same CT under a field of another family than the bundle's breathing model (:data:`LUNG_GENERATOR`:
  rotation about a random axis, translation, isotropic scale, composed with a smooth random field) and independent
  noise; lung Dice, error in mm inside the fixed lungs.
- ``lung_inter`` (network: ``unpaired_ct_lung``): the 4 test pairs of ``bundles/unpaired_ct_lung`` (real
  inter-subject chest CT, lung masks); lung Dice (no true DDF).
- ``abdomen`` (network: ``unpaired_ct_abdomen``): the test pairs of ``bundles/unpaired_ct_abdomen`` (its held-out
  real CT and held-out random warps of it, 72x56x40 voxels of 4 mm); Dice of liver, spleen, stomach, pancreas (no
  true DDF). Not a source unseen by that bundle: the set is here for ``universal_3d``.

- ``brain_own``, ``lung_own``: the bundles' own test pairs (``unpaired_mr_brain``, ``paired_ct_lung``: lung Dice, TRE
  of the vessel landmarks, error), to see what the affine stage costs where the network is in its domain.

``--universal`` adds ``universal_3d`` (``bundles/universal_3d``, trained on synthetic data only) to every set.

The targets of issue 18 are checked per network method (``targets`` in the JSON, a list in the Markdown): never worse
than no registration on any pair (Dice lower or error higher), mean error <= 0.6x no registration's, and on
``brain_unseen`` mean Dice >= ANTs SyN's.

Outputs into ``--output`` (default ``docs/benchmarks/generalisation``): ``<name>.json`` (per-pair rows, summaries,
targets, generator parameters, load averages, versions) and ``<name>.md``.

Usage (from the repository root)::

    nice -n 5 python scripts/benchmark_generalisation.py                       # every set, 1 thread
    python scripts/benchmark_generalisation.py --sets lung_unseen \\
        --weights paired_ct_lung:robust=bundles/paired_ct_lung/runs/robust/best_model.pt
"""

from __future__ import annotations

import argparse
import datetime
import json
import math
import os
import sys
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import nibabel as nib
import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

import benchmark_pairwise as bp  # noqa: E402  (a sibling script, not a package)

from monai_reg_ext import evaluation as ev  # noqa: E402

ROOT = bp.ROOT
SETS = ("brain_unseen", "lung_unseen", "lung_inter", "abdomen", "brain_own", "lung_own")
BUNDLES = {
    "brain_own": "unpaired_mr_brain",
    "lung_own": "paired_ct_lung",
    "brain_unseen": "unpaired_mr_brain",
    "lung_unseen": "paired_ct_lung",
    "lung_inter": "unpaired_ct_lung",
    "abdomen": "unpaired_ct_abdomen",
}
ORGANS = ("liver", "spleen", "stomach", "pancreas")

#: Generator of the ``lung_unseen`` pairs (recorded in the results); displacements are applied on the bundle's own
#: 64x56x64 grid of 4.5 mm voxels.
LUNG_GENERATOR: dict[str, Any] = {
    "rotation_deg": 5.0,  # about a random unit axis through the grid centre, random sign
    "translation_mm": 8.0,  # along a random unit direction
    "scale": 1.04,  # isotropic, 1.04 or 1 / 1.04 (alternating)
    "smooth_max_mm": 9.0,  # smooth field: max norm, Gaussian-smoothed noise of sigma below
    "smooth_sigma_mm": 27.0,
    "noise_hu": 20.0,  # Gaussian noise added to each image (HU)
    "seed": 23000,  # pair k uses seed + 10 k
    "sources_per_image": 2,  # pairs per held-out source image
}


def build_lung_pairs(out_dir: Path, max_pairs: int | None = None, params: Mapping[str, Any] = LUNG_GENERATOR) -> Path:
    """Write the ``lung_unseen`` pairs and their ``pairs.json``; returns the pairs file.

    For each fixed image of ``bundles/paired_ct_lung/data/test`` (the held-out patient's real CT and lung mask) and
    each of ``sources_per_image`` seeds ``s``: moving = that CT (+ noise); true pull DDF ``u = affine o smooth``
    (voxels of the 4.5 mm grid); fixed = the CT sampled at ``x + u(x)`` (bilinear, border), + its own noise, so
    ``fixed(x) = moving(x + u(x))``; the lung masks alike.
    """
    from monai_reg_ext.spatial import compose_ddf, warp_image

    out_dir.mkdir(parents=True, exist_ok=True)
    specs = ev.read_pairs(ROOT / "bundles" / "paired_ct_lung" / "data" / "test" / "pairs.json")
    entries: list[dict[str, str]] = []
    for i, spec in enumerate(specs):
        img, lab = nib.load(spec.fixed), nib.load(str(spec.fixed_label))
        ct, mask = np.asarray(img.dataobj, np.float32), np.asarray(lab.dataobj, np.float32)
        shape, spacing = ct.shape, float(np.sqrt((img.affine[:3, :3] ** 2).sum(0)).mean())
        for _ in range(int(params["sources_per_image"])):
            k = len(entries)
            seed = int(params["seed"]) + 10 * k
            rng = np.random.default_rng(seed)
            axis, direction = rng.standard_normal(3), rng.standard_normal(3)
            angle = math.radians(params["rotation_deg"]) * rng.choice([-1.0, 1.0])
            shift = params["translation_mm"] / spacing * direction / np.linalg.norm(direction)
            scale = params["scale"] if k % 2 == 0 else 1.0 / params["scale"]
            affine_part = bp.affine_field(shape, scale * bp.rotation_matrix(axis, angle), shift)
            smooth = bp.smooth_field(
                shape, params["smooth_max_mm"] / spacing, params["smooth_sigma_mm"] / spacing, seed
            )
            ddf = compose_ddf(first=affine_part, second=smooth).float()
            stack = torch.from_numpy(np.stack([ct, mask]))[None]
            warped = warp_image(stack, ddf, mode="bilinear", padding_mode="border")[0].numpy()
            name = f"lung_unseen_{k:02d}"
            arrays = {
                "moving": ct + rng.normal(0.0, params["noise_hu"], shape).astype(np.float32),
                "fixed": warped[0] + rng.normal(0.0, params["noise_hu"], shape).astype(np.float32),
                "moving_label": mask,
                "fixed_label": (warped[1] >= 0.5).astype(np.float32),
                "ddf": np.moveaxis(ddf[0].numpy(), 0, -1).astype(np.float32),
            }
            entry = {"name": name, "subject": f"{spec.subject or 'test'} image {i}, seed {seed}"}
            for key, arr in arrays.items():
                path = out_dir / f"{name}_{key}.nii.gz"
                nib.save(nib.Nifti1Image(arr, img.affine), path)
                entry[key] = path.name
            entries.append(entry)
            if max_pairs and len(entries) >= max_pairs:
                break
        if max_pairs and len(entries) >= max_pairs:
            break
    path = out_dir / "lung_unseen_pairs.json"
    path.write_text(json.dumps(entries, indent=2) + "\n")
    return path


def lung_known_metrics() -> list[ev.Metric]:
    """Lung Dice, error in mm inside the fixed lungs, folding % and SDlogJ over the grid."""
    return [ev.dice(["lung"]), ev.ddf_error("label"), ev.folding(percent=True), ev.sdlogj(key="sdlogj")]


def pair_set(name: str, data_dir: Path, mni_source: str | None, max_pairs: int | None) -> tuple[bp.PairSet, dict]:
    """The pairs of set ``name`` (generated ones written to ``data_dir``) and what describes them."""
    bundle = ROOT / "bundles" / BUNDLES[name]
    if name == "brain_unseen":
        made, info = bp.pair_set("brain_unseen", data_dir, mni_source, max_pairs)
        made.bundle = bundle
        return made, info
    if name == "lung_unseen":
        path = build_lung_pairs(data_dir, max_pairs)
        info = {"generator": LUNG_GENERATOR, "file_array_sha256": bp.file_hashes(path)}
        desc = (
            "generated here (a synthetic deformation of real CT): paired_ct_lung's held-out patient (pyrad_lung2, "
            "64x56x64, 4.5 mm) under an affine + smooth field (not the bundle's breathing model)"
        )
        specs = ev.read_pairs(path)
        return bp.PairSet(name, specs, lung_known_metrics(), bundle, {"binarise": True}, ("dice_lung",), desc), info
    if name == "lung_inter":
        made, info = bp.pair_set("lung", data_dir, mni_source, max_pairs)
        made.name = name
        return made, info
    if name == "brain_own":
        made, info = bp.pair_set("brain", data_dir, mni_source, max_pairs)
        made.name = name
        return made, info
    if name == "lung_own":
        specs = ev.read_pairs(bundle / "data" / "test" / "pairs.json")[: max_pairs or None]
        metrics = [*lung_known_metrics(), ev.tre()]
        desc = "paired_ct_lung test pairs: its held-out patient under its own breathing model (64x56x64, 4.5 mm)"
        return bp.PairSet(name, specs, metrics, bundle, {"binarise": True}, ("dice_lung",), desc), {}
    if name == "abdomen":
        specs = ev.read_pairs(bundle / "data" / "test" / "pairs.json")[: max_pairs or None]
        metrics = [ev.dice(ORGANS), ev.folding(percent=True), ev.sdlogj(key="sdlogj")]
        desc = "unpaired_ct_abdomen test pairs: its held-out real CT and random warps of it (72x56x40, 4 mm)"
        return bp.PairSet(
            name, specs, metrics, bundle, {"binarise": True}, tuple(f"dice_{o}" for o in ORGANS), desc
        ), {}
    raise ValueError(f"unknown set {name!r}; choose from {SETS}.")


def parse_weights(values: Sequence[str]) -> dict[str, dict[str, Path]]:
    """``BUNDLE:NAME=PATH`` entries -> ``{bundle: {name: path}}``; every bundle gets ``shipped=models/model.pt``.

    Raises:
        ValueError: an entry that is not ``BUNDLE:NAME=PATH`` or names an unknown bundle.
    """
    out = {b: {"shipped": ROOT / "bundles" / b / "models" / "model.pt"} for b in BUNDLES.values()}
    for value in values:
        head, sep, path = value.partition("=")
        bundle, colon, name = head.partition(":")
        if not (sep and colon and name and path) or bundle not in out:
            raise ValueError(f"--weights: expected BUNDLE:NAME=PATH with BUNDLE in {sorted(out)}, got {value!r}.")
        out[bundle][name] = Path(path).resolve()
    return out


def make_methods(
    pairs: bp.PairSet,
    weights: Mapping[str, Path],
    threads: int,
    affine: bool,
    syn: bool,
    universal: bool = False,
    refine: bool = False,
) -> dict:
    """``none``, each network (and ``+affine``), ``universal_3d`` (and ``+affine``), ``ants_syn`` for one set.

    With ``refine`` also: each network followed by the pipeline's deformable stage (``+deformable``, on the bundle's
    ``refinement_schedule``) and between the affine and deformable stages (``+affine+deformable``); the bundle-free
    pipeline (``pipeline``: affine + deformable, default schedule); and the affine stage followed by the refinement
    schedule (``universal_3d``'s when it runs) without a network (``pipeline_short``: what the network's start adds).
    """
    from monai_reg_ext.api.register import NETWORK_REFINEMENT, refinement_schedule
    from monai_reg_ext.bundle import load_bundle

    methods: dict[str, ev.Method] = {"none": ev.identity()}
    models = {name: (pairs.bundle, path) for name, path in weights.items()}
    if universal:
        models["universal_3d"] = (
            ROOT / "bundles" / "universal_3d",
            ROOT / "bundles" / "universal_3d" / "models" / "model.pt",
        )
    short = dict(NETWORK_REFINEMENT)
    for name, (bundle, path) in models.items():
        model = load_bundle(bundle, device="cpu", weights=path)
        if name == "universal_3d":  # compare the initialiser with its own schedule run from the affine stage
            short = refinement_schedule(model)
        methods[name] = ev.register_bundle(model, "cpu", stages=())
        if affine:
            methods[f"{name}+affine"] = ev.register_bundle(model, "cpu", stages=("affine",))
        if refine:
            methods[f"{name}+deformable"] = ev.register_bundle(model, "cpu", stages=("deformable",))
            methods[f"{name}+affine+deformable"] = ev.register_bundle(model, "cpu", stages=("affine", "deformable"))
    if refine:
        methods["pipeline"] = ev.register_pipeline("cpu", stages=("affine", "deformable"))
        methods["pipeline_short"] = ev.register_pipeline("cpu", stages=("affine", "deformable"), **short)
    if affine:  # the pipeline's affine stage alone (what "+affine" adds before a network)
        methods["affine"] = ev.register_pipeline("cpu", stages=("affine",))
    if syn:
        ok, why = ev.peer_available("ants_syn")
        if ok:
            methods["ants_syn"] = ev.peer_method("ants_syn")
        else:
            print(f"note: skipping ants_syn: {why}", flush=True)
    return {k: bp.with_threads(m, None, threads) for k, m in methods.items()}


def _pair_values(res: Mapping[str, Any], method: str, key: str) -> list[float]:
    return [float(r[key]) for r in res["pairs"][method] if key in r]


def targets(res: Mapping[str, Any], set_name: str) -> dict[str, dict[str, Any]]:
    """Per network method: pairs worse than ``none`` (Dice lower by > 1e-4 or error higher by > 1e-3 mm), the mean
    error ratio to ``none`` (target <= 0.6) and, on ``brain_unseen``, mean Dice minus ANTs SyN's (target >= 0);
    for ``universal_3d``: its mean Dice gain over ``none`` (target > 0.001); for every ``+affine`` method, its mean
    Dice gain over the ``affine`` stage alone (what the network adds)."""
    out: dict[str, dict[str, Any]] = {}
    none_dice, none_err = _pair_values(res, "none", "dice_mean"), _pair_values(res, "none", "error_mm")
    for method in res["pairs"]:
        if method in ("none", "ants_syn", "affine", "pipeline", "pipeline_short"):
            continue
        dice = _pair_values(res, method, "dice_mean")
        if method.endswith("+affine") and "affine" in res["pairs"]:  # what the network adds to the affine stage
            affine_gain = float(np.mean(dice) - np.mean(_pair_values(res, "affine", "dice_mean")))
        if method.startswith("universal_3d"):  # its own target: Dice above no registration
            gain = float(np.mean(dice) - np.mean(none_dice))
            out[method] = {"dice_gain_over_none": gain, "improves_dice": gain > 1e-3}
            if method.endswith("+affine") and "affine" in res["pairs"]:
                out[method]["dice_gain_over_affine"] = affine_gain
            if method.endswith("+deformable") and "pipeline" in res["pairs"]:
                out[method].update(initialiser_target(res, method))
            continue
        dice, err = _pair_values(res, method, "dice_mean"), _pair_values(res, method, "error_mm")
        worse = sum(d < n - 1e-4 for d, n in zip(dice, none_dice))
        worse += sum(e > n + 1e-3 for e, n in zip(err, none_err)) if err else 0
        row: dict[str, Any] = {"pairs_worse_than_none": int(worse), "never_worse": worse == 0}
        if err and none_err:
            row["error_ratio_to_none"] = float(np.mean(err) / np.mean(none_err))
            row["error_ratio_ok"] = row["error_ratio_to_none"] <= 0.6
        if method.endswith("+affine") and "affine" in res["pairs"]:
            row["dice_gain_over_affine"] = affine_gain
        if set_name == "brain_unseen" and "ants_syn" in res["pairs"]:
            row["dice_minus_syn"] = float(np.mean(dice) - np.mean(_pair_values(res, "ants_syn", "dice_mean")))
            row["dice_ge_syn"] = row["dice_minus_syn"] >= 0
        out[method] = row
    return out


INITIALISER_DICE_TOLERANCE = 0.005
"""How far below the bundle-free pipeline's mean Dice an initialised run may end and still count as reaching it."""


def initialiser_target(res: Mapping[str, Any], method: str) -> dict[str, Any]:
    """A network as the initialiser of optimisation (issue 18): its ``+affine+deformable`` run against the
    bundle-free ``pipeline``: mean Dice within :data:`INITIALISER_DICE_TOLERANCE` and median seconds <= 1/2; the
    ``pipeline_short`` gap says what the network's start adds to the same short schedule."""
    summary = res["summary"]
    dice = float(np.mean(_pair_values(res, method, "dice_mean")))
    ref = float(np.mean(_pair_values(res, "pipeline", "dice_mean")))
    time_ratio = float(
        np.median(_pair_values(res, method, "seconds")) / np.median(_pair_values(res, "pipeline", "seconds"))
    )
    row: dict[str, Any] = {
        "dice_minus_pipeline": dice - ref,
        "time_ratio_to_pipeline": time_ratio,
        "reaches_pipeline_in_half_time": dice >= ref - INITIALISER_DICE_TOLERANCE and time_ratio <= 0.5,
    }
    if "pipeline_short" in summary:
        row["dice_minus_pipeline_short"] = dice - float(np.mean(_pair_values(res, "pipeline_short", "dice_mean")))
    return row


def markdown(results: Mapping[str, Any]) -> str:
    """The report: one table and one target list per set."""
    env = results["environment"]
    lines = [
        "# Generalisation benchmark: networks on pairs from sources their training never used",
        "",
        f"Command: `{results['command']}`  ",
        f"Date (UTC): {env['date_start']} to {env.get('date_end', '?')}; {env['cpu_model']}, {env['cpu_count']} CPUs "
        f"shared with other jobs; **{results['threads']} thread(s)**; load average (1/5/15 min) {env['load_start']} "
        f"at the start; torch {env['versions']['torch']}. Weights: "
        + ", ".join(f"`{b}:{n}` = `{p}`" for b, w in results["weights"].items() for n, p in w.items())
        + ".",
        "",
        "Seconds: wall time of the whole `register` call (reading, resampling, affine stage if any, network, "
        "writing nothing); Dice and error: mean ± population std over pairs; error: mean |ddf - true ddf| in mm "
        "inside the fixed labels; folding: % of voxels with Jacobian determinant <= 0.",
        "",
    ]
    for name, res in results["sets"].items():
        n = len(next(iter(res["pairs"].values())))
        lines += [f"## `{name}` ({n} pairs, network bundle `{res['bundle']}`)", "", res["description"], ""]
        lines += [bp.set_table(name, res, labels={m: m for m in res["summary"]}), ""]
        lines += ["Targets (issue 18):", ""]
        for method, row in res["targets"].items():
            text = ", ".join(f"{k} {v:.3f}" if isinstance(v, float) else f"{k} {v}" for k, v in row.items())
            lines.append(f"- `{method}`: {text}")
        lines.append("")
    return "\n".join(lines)


def _write(out: Path, name: str, results: Mapping[str, Any]) -> None:
    results["environment"]["date_end"] = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")
    ev.write_text(out / f"{name}.json", json.dumps(results, indent=1, default=str) + "\n")
    ev.write_text(out / f"{name}.md", markdown(results))


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--render", default=None, help="only recompute targets and Markdown from this results JSON")
    ap.add_argument("--sets", nargs="+", default=list(SETS), choices=SETS)
    ap.add_argument("--weights", nargs="*", default=[], help="extra weights BUNDLE:NAME=PATH (shipped always run)")
    ap.add_argument("--no-affine", action="store_true", help="skip the '+affine' variants")
    ap.add_argument("--no-syn", action="store_true", help="skip ANTs SyN")
    ap.add_argument("--universal", action="store_true", help="also run universal_3d on every set")
    ap.add_argument(
        "--refine",
        action="store_true",
        help="also each network between the affine and deformable stages, the bundle-free pipeline and its short "
        "schedule (the initialiser comparison)",
    )
    ap.add_argument("--max-pairs", type=int, default=None, help="at most N pairs per set")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--mni-source", default=None, help="nilearn wheel / folder for the MNI template")
    ap.add_argument("--data", default=None, help="folder for the generated pairs (default: a temporary one)")
    ap.add_argument("--output", default=str(ROOT / "docs" / "benchmarks" / "generalisation"))
    ap.add_argument("--name", default="generalisation")
    return ap.parse_args(argv)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    """Run the sets and write ``<output>/<name>.{json,md}`` (rewritten after every set)."""
    args = parse_args(argv)
    if args.render:
        results = json.loads(Path(args.render).read_text())
        for name, res in results["sets"].items():
            res["targets"] = targets(res, name)
        ev.write_text(Path(args.render), json.dumps(results, indent=1, default=str) + "\n")
        ev.write_text(Path(args.render).with_suffix(".md"), markdown(results))
        return results
    weights = parse_weights(args.weights)
    env_threads = ev.configure_threads(args.threads)
    out = Path(args.output)
    tmp = tempfile.TemporaryDirectory(prefix="generalisation_") if args.data is None else None
    data_dir = Path(tmp.name if tmp is not None else args.data)
    results: dict[str, Any] = {
        "command": " ".join(
            ["python", "scripts/benchmark_generalisation.py", *(sys.argv[1:] if argv is None else argv)]
        ),
        "threads": args.threads,
        "weights": {b: {n: os.path.relpath(p, ROOT) for n, p in w.items()} for b, w in weights.items()},
        "environment": {
            "date_start": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
            "cpu_model": bp._cpu_model(),
            "cpu_count": os.cpu_count(),
            "load_start": bp.load_average(),
            "versions": bp._versions(),
            **env_threads,
        },
        "sets": {},
    }
    try:
        for name in args.sets:
            print(f"== {name} (load {bp.load_average()})", flush=True)
            pairs, info = pair_set(name, data_dir / name, args.mni_source, args.max_pairs)
            weights_here = {} if name == "abdomen" and args.universal else weights[BUNDLES[name]]
            methods = make_methods(
                pairs, weights_here, args.threads, not args.no_affine, not args.no_syn, args.universal, args.refine
            )
            res = bp.run_set(pairs, methods, warmup=[m for m in methods if m != "none"][:1])
            res.update(description=pairs.description, bundle=BUNDLES[name], **info)
            res["targets"] = targets(res, name)
            results["sets"][name] = res
            print(bp.set_table(name, res, labels={m: m for m in res["summary"]}), flush=True)
            _write(out, args.name, results)
    finally:
        _write(out, args.name, results)
        if tmp is not None:
            tmp.cleanup()
    return results


if __name__ == "__main__":
    main()
