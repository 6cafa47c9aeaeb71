"""Held-out comparison of the three unpaired_ct_abdomen trainings: Dice per organ, folding, before/after.

Two held-out sets, each model (combined = ``models/model.pt``, unsupervised, weakly supervised) on the same pairs:

- ``test``: every ordered pair of ``data/test`` (4 subjects, 12 pairs); subject 000 is the real CT itself (not in
  training), subjects 001-003 are held-out random warps of it (seeds never used in training).
- ``slab``: one restricted field-of-view pair (72 x 56 x 8 voxels of 4 mm) between two REAL patients: moving = the
  3 mm CT patient, fixed = the DICOM-series patient (never seen in any form in training). Pre-aligned by translation
  only. The network runs on this smaller grid (it is fully convolutional); this is outside its training distribution.

Metrics: Dice per organ (liver, spleen, stomach, pancreas) of the warped moving label (bilinear, threshold 0.5) with
the fixed label, before (no registration) and after; folding fraction (share of voxels with det J <= 0); SD of
log det J; mean squared intensity difference (images in [0, 1]) before and after. Labels are TotalSegmentator output.

    python bundles/unpaired_ct_abdomen/scripts/evaluate.py              # writes docs/results/*
    python bundles/unpaired_ct_abdomen/scripts/evaluate.py --update-metadata   # also sets metadata eval_metrics

Writes ``docs/results/results.json``, ``docs/results/results.md``, ``docs/results/held_out_test.png`` (test pair 0,
combined model) and ``docs/results/held_out_slab.png``.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from monai.bundle import ConfigParser

from monai_reg_ext import warp_image
from monai_reg_ext.metrics import folding_fraction, image_ssd, label_dice, sd_log_jacobian
from monai_reg_ext.transforms import registration_preprocessing
from monai_reg_ext.visualise import save_registration_figure

BUNDLE = Path(__file__).resolve().parents[1]
ORGANS = ("liver", "spleen", "stomach", "pancreas")
#: organs in the slab pair's mean Dice: its fixed slab holds 5 voxels (0.3 ml) of pancreas, too few to score
SLAB_MEAN_ORGANS = ("liver", "spleen", "stomach")
#: model name -> weights file (relative to the bundle) and the config that trained it
MODELS = {
    "combined": ("models/model.pt", "configs/train.json"),
    "unsupervised": ("models/model_unsupervised.pt", "configs/unsupervised.json"),
    "weakly_supervised": ("models/model_weakly_supervised.pt", "configs/weakly_supervised.json"),
}


def build_network(bundle: Path, weights: Path) -> torch.nn.Module:
    """The bundle's ``network_def`` (inference.json) in eval mode with ``weights`` loaded (``weights_only=True``)."""
    parser = ConfigParser()
    parser.read_config(str(bundle / "configs" / "inference.json"))
    parser["bundle_root"] = str(bundle)
    net = parser.get_parsed_content("network_def", instantiate=True)
    net.load_state_dict(torch.load(weights, map_location="cpu", weights_only=True))
    return net.eval()


def load_pairs(folder: Path, spatial_size: Sequence[int] | None) -> list[dict]:
    """Pairs of ``folder/pairs.json`` preprocessed as in training: ``(1, C, *S)`` tensors, images min-max to [0, 1].

    Raises:
        FileNotFoundError: when ``pairs.json`` or a file it names is missing.
    """
    pairs_file = folder / "pairs.json"
    if not pairs_file.is_file():
        raise FileNotFoundError(f"{pairs_file}: no pairs file (run scripts/make_demo_data.py).")
    pre = registration_preprocessing(spatial_size)
    out = []
    for item in json.loads(pairs_file.read_text()):
        paths = {k: folder / item[k] for k in ("moving", "fixed", "moving_label", "fixed_label")}
        for key, p in paths.items():
            if not p.is_file():
                raise FileNotFoundError(f"{pairs_file}: {key} file {p} does not exist.")
        d = pre({f"{k}_image" if "label" not in k else k: str(p) for k, p in paths.items()})
        out.append(
            {
                "name": f"{Path(item['moving']).name.split('.')[0]}->{Path(item['fixed']).name.split('.')[0]}",
                **{
                    k: torch.as_tensor(d[k])[None].float()
                    for k in ("moving_image", "fixed_image", "moving_label", "fixed_label")
                },
            }
        )
    return out


def _dice_row(pred: torch.Tensor, fixed: torch.Tensor) -> dict[str, float]:
    return {o: float(v) for o, v in zip(ORGANS, label_dice(pred, fixed)[0].tolist())}


def _stats(values: list[float]) -> dict:
    v = np.asarray(values, dtype=np.float64)
    return {"mean": round(float(np.nanmean(v)), 4), "std": round(float(np.nanstd(v)), 4)}


@torch.no_grad()
def evaluate_set(
    pairs: list[dict], nets: dict[str, torch.nn.Module], mean_organs: Sequence[str] = ORGANS
) -> tuple[dict, dict]:
    """Per-pair and summary metrics of ``before`` (identity) and of each network on ``pairs``.

    ``dice_mean`` averages the Dice of ``mean_organs`` only (all organs are still reported one by one).

    Returns:
        ``(result dict, {model: (ddf, warped) of pair 0})`` for the figures.
    """
    rows, first = [], {}
    for k, pr in enumerate(pairs):
        row = {"pair": pr["name"], "before": {"dice": _dice_row(pr["moving_label"], pr["fixed_label"])}}
        row["before"]["msd"] = float(image_ssd(pr["moving_image"], pr["fixed_image"]).mean())
        for name, net in nets.items():
            out = net(pr["moving_image"], pr["fixed_image"])
            ddf = out["ddf"]
            warped_label = warp_image(pr["moving_label"], ddf, mode="bilinear")
            row[name] = {
                "dice": _dice_row(warped_label, pr["fixed_label"]),
                "msd": float(image_ssd(out["pred_fixed_image"], pr["fixed_image"]).mean()),
                "folding_fraction": float(folding_fraction(ddf).mean()),
                "sd_log_jacobian": float(sd_log_jacobian(ddf).mean()),
                "mean_abs_disp_vox": float(ddf.norm(dim=1).mean()),
            }
            if k == 0:
                first[name] = (ddf, out["pred_fixed_image"])
        rows.append(row)
    summary = {}
    for method in ["before", *nets]:
        s = {f"dice_{o}": _stats([r[method]["dice"][o] for r in rows]) for o in ORGANS}
        s["dice_mean"] = _stats([float(np.nanmean([r[method]["dice"][o] for o in mean_organs])) for r in rows])
        for key in ("msd", "folding_fraction", "sd_log_jacobian", "mean_abs_disp_vox"):
            if key in rows[0][method]:
                s[key] = _stats([r[method][key] for r in rows])
        summary[method] = s
    per_pair = json.loads(json.dumps(rows), parse_float=lambda x: round(float(x), 4))
    return {"pairs": len(rows), "mean_dice_organs": list(mean_organs), "summary": summary, "per_pair": per_pair}, first


def _markdown(results: dict) -> str:
    lines = [
        "# unpaired_ct_abdomen: held-out results",
        "",
        "Written by `scripts/evaluate.py` (do not edit by hand). Dice of the warped moving organ labels (bilinear, "
        "threshold 0.5) with the fixed labels, mean +- std over pairs; labels are TotalSegmentator model output. "
        "Folding: share of voxels with det J <= 0. MSD: mean squared difference of the [0, 1] images.",
        "",
    ]
    for set_name, title in (
        ("test", "Test pairs (12 ordered pairs of 4 held-out subjects)"),
        ("slab", "Real inter-patient slab (1 pair, 72x56x8, restricted field of view)"),
    ):
        res = results[set_name]
        lines += [
            f"## {title}",
            "",
            "| method | "
            + " | ".join(f"Dice {o}" for o in ORGANS)
            + " | mean Dice | folding fraction | SD log J | MSD |",
            "|" + "---|" * (len(ORGANS) + 5),
        ]
        for method, s in res["summary"].items():
            cells = [f"{s[f'dice_{o}']['mean']:.3f} ± {s[f'dice_{o}']['std']:.3f}" for o in ORGANS]
            cells.append(f"**{s['dice_mean']['mean']:.3f}** ± {s['dice_mean']['std']:.3f}")
            for key, fmt in (("folding_fraction", "{:.2e}"), ("sd_log_jacobian", "{:.3f}")):
                cells.append(fmt.format(s[key]["mean"]) if key in s else "-")
            cells.append(f"{s['msd']['mean']:.4f}")
            lines.append(f"| {method} | " + " | ".join(cells) + " |")
        lines.append("")
    lines += [f"Weights: {', '.join(f'{k} = `{v}`' for k, v in results['weights'].items())}.", ""]
    return "\n".join(lines)


def eval_metrics(results: dict) -> dict[str, float]:
    """The metadata ``eval_metrics`` of the default (combined) model and the no-registration baseline."""
    t = results["test"]["summary"]
    m = {}
    for o in ORGANS:
        m[f"test_mean_dice_{o}"] = t["combined"][f"dice_{o}"]["mean"]
    m["test_mean_dice"] = t["combined"]["dice_mean"]["mean"]
    m["test_folding_fraction"] = t["combined"]["folding_fraction"]["mean"]
    m["test_sd_log_jacobian"] = t["combined"]["sd_log_jacobian"]["mean"]
    for name in ("unsupervised", "weakly_supervised"):
        if name in t:
            m[f"{name}_test_mean_dice"] = t[name]["dice_mean"]["mean"]
    for o in ORGANS:
        m[f"no_registration_mean_dice_{o}"] = t["before"][f"dice_{o}"]["mean"]
    m["no_registration_mean_dice"] = t["before"]["dice_mean"]["mean"]
    m["slab_mean_dice"] = results["slab"]["summary"]["combined"]["dice_mean"]["mean"]
    m["slab_no_registration_mean_dice"] = results["slab"]["summary"]["before"]["dice_mean"]["mean"]
    return m


def run(
    bundle: Path = BUNDLE, data: Path | None = None, output: Path | None = None, update_metadata: bool = False
) -> dict:
    """Evaluate the three models on both held-out sets and write the results files (see the module docstring)."""
    torch.manual_seed(0)
    data = Path(data) if data else bundle / "data"
    output = Path(output) if output else bundle / "docs" / "results"
    parser = ConfigParser()
    parser.read_config(str(bundle / "configs" / "inference.json"))
    spatial_size = [int(s) for s in parser["spatial_size"]]
    nets = {}
    for name, (weights, _) in MODELS.items():
        path = bundle / weights
        if not path.is_file():
            raise FileNotFoundError(f"{path}: weights of the {name} model are missing (train it, see docs/README.md).")
        nets[name] = build_network(bundle, path)
    results = {"weights": {k: v[0] for k, v in MODELS.items()}, "organs": list(ORGANS)}
    figures = {}
    for set_name, size, organs in (("test", spatial_size, ORGANS), ("slab", None, SLAB_MEAN_ORGANS)):
        pairs = load_pairs(data / set_name, size)
        results[set_name], first = evaluate_set(pairs, nets, organs)
        figures[set_name] = (pairs[0], first["combined"])
        s = results[set_name]["summary"]
        print(set_name, {m: s[m]["dice_mean"]["mean"] for m in s})
    output.mkdir(parents=True, exist_ok=True)
    results["eval_metrics"] = eval_metrics(results)
    (output / "results.json").write_text(json.dumps(results, indent=2) + "\n")
    (output / "results.md").write_text(_markdown(results))
    for set_name, (pr, (ddf, warped)) in figures.items():
        save_registration_figure(
            output / f"held_out_{set_name}.png", pr["moving_image"], pr["fixed_image"], warped, ddf, axis=2, grid_step=3
        )
    if update_metadata:
        meta_path = bundle / "configs" / "metadata.json"
        meta = json.loads(meta_path.read_text())
        meta["eval_metrics"] = results["eval_metrics"]
        meta_path.write_text(json.dumps(meta, indent=4) + "\n")
    return results


def main(argv: Sequence[str] | None = None) -> int:
    """Command line entry point."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--bundle", default=str(BUNDLE))
    ap.add_argument("--data", default=None, help="data folder with test/ and slab/ (default <bundle>/data)")
    ap.add_argument("--output", default=None, help="results folder (default <bundle>/docs/results)")
    ap.add_argument("--update-metadata", action="store_true", help="write eval_metrics into configs/metadata.json")
    args = ap.parse_args(argv)
    run(Path(args.bundle), args.data, args.output, args.update_metadata)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
