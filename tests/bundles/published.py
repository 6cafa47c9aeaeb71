"""Tie a network bundle's shipped weights (``models/model.pt``) to its published numbers.

Two kinds of checks, used by ``test_published_metrics.py``:

- :data:`MEANS`: the bundle's own ``scripts/evaluate.py`` (imported from its path, ``main(argv)``) on its whole
  held-out set, restricted to the cheapest arguments that still produce the network's published numbers (no peers,
  no instance optimisation, not the bundle's other trainings); the ``eval_metrics`` it writes into
  ``<output>/results.json`` must equal ``configs/metadata.json``'s within :func:`tolerance` (:func:`compare`).
- :data:`PAIRS`: the same script on one to four held-out pairs (a pairs file, a data folder or a *bundle view*: a
  temporary folder whose ``configs/`` and ``models/`` link to the bundle's and whose ``data/`` holds a subset); its
  per-pair rows must equal the per-pair rows of the bundle's ``docs/results/results.json`` (:func:`compare_rows`).
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from tests.helpers import BUNDLES_DIR, load_bundle_script, run_bundle_evaluation, write_absolute_pairs

#: ``eval_metrics`` never compared: timings (machine- and load-dependent) and the numbers of methods the checks do
#: not run (classical peers, instance optimisation, the bundles' other trainings)
NOT_COMPARED = re.compile(r"seconds|^(ants_syn|combined_io50|unsupervised|weakly_supervised)_")
#: per-pair columns that name a pair rather than score it
ID_KEYS = ("pair", "group", "moving", "fixed", "subject", "method")
#: per-pair columns never compared (timings, counts)
ROW_SKIP = re.compile(r"seconds|^(gap|a|n_frames|n_landmarks)$")

Rows = dict[str, list[dict[str, Any]]]


def tolerance(key: str) -> float:
    """Absolute tolerance of a metric named ``key`` (an ``eval_metrics`` name or a per-pair column).

    - distances in mm or pixels, and folding in %: 0.02;
    - mean squared intensity differences (``ssd`` / ``msd``, values ~1e-3): 5e-5;
    - folding fractions: 5e-4;
    - everything else (Dice, LNCC, mutual information, SD of log J; values of order 1): 2e-3.

    CPU results are deterministic for one machine and thread count; these margins allow for other BLAS builds and
    thread counts changing the last digits, and lie far below what retrained or damaged weights change.
    """
    if re.search(r"(^|_)(mm|px|pct)(_|$)", key):
        return 0.02
    if re.search(r"(^|_)(ssd|msd)(_|$)", key):
        return 5e-5
    if "folding_fraction" in key:
        return 5e-4
    return 2e-3


def _check(key: str, published: float, measured: float, unit: float) -> str | None:
    tol = tolerance(key) + unit
    if not math.isfinite(measured) or abs(measured - published) > tol:
        return f"{key}: published {published}, measured {measured} (|diff| {abs(measured - published):.3g} > {tol:.3g})"
    return None


def compare(
    published: Mapping[str, float],
    measured: Mapping[str, float],
    digits: int | Mapping[str, int] = 4,
    ignore: Callable[[str], Any] = NOT_COMPARED.search,
) -> tuple[list[str], list[str]]:
    """Compare every published key that ``ignore`` keeps with ``measured``.

    Both sides are rounded to ``digits`` decimals (one number, or per key with 4 for keys not listed: the rounding of
    the bundle's script), so a key may differ by :func:`tolerance` plus one unit of that last digit.

    Returns:
        ``(compared keys, problems)``: one line per key measured outside its tolerance or not measured at all.
    """
    keys = [k for k in published if not ignore(k)]
    problems = []
    for key in keys:
        if key not in measured:
            problems.append(f"{key}: published {published[key]}, not measured")
            continue
        unit = 10.0 ** -(digits.get(key, 4) if isinstance(digits, Mapping) else digits)
        problems.append(_check(key, float(published[key]), float(measured[key]), unit))
    return keys, [p for p in problems if p]


def normalise_rows(rows: Mapping[str, Sequence[Mapping]] | Sequence[Mapping]) -> Rows:
    """Per-pair rows of a results file as ``{"none": [...], "network": [...]}``.

    Accepts ``{method: rows}`` (method ``none`` / ``before``, and ``network``, ``network:<first>`` or ``combined``),
    a list of rows with a ``method`` column, or the older list of rows with ``<metric>_before`` / ``<metric>_after``
    columns (other metric columns belong to the network).
    """
    if isinstance(rows, Mapping):
        out: Rows = {}
        for method, method_rows in rows.items():
            if method in ("none", "before"):
                out["none"] = [dict(r) for r in method_rows]
            elif method in ("network", "combined") or (method.startswith("network:") and "+io" not in method):
                out.setdefault("network", [dict(r) for r in method_rows])
        return out
    if rows and "method" in rows[0]:
        return normalise_rows(
            {m: [r for r in rows if r["method"] == m] for m in dict.fromkeys(r["method"] for r in rows)}
        )
    out = {"none": [], "network": []}
    for row in rows:
        ids = {k: v for k, v in row.items() if k in ID_KEYS}
        before = {k[: -len("_before")]: v for k, v in row.items() if k.endswith("_before")}
        after = {k[: -len("_after")]: v for k, v in row.items() if k.endswith("_after")}
        other = {k: v for k, v in row.items() if k not in ids and not k.endswith(("_before", "_after"))}
        out["none"].append({**ids, **before})
        out["network"].append({**ids, **after, **other})
    return out


def compare_rows(
    reference: Rows,
    measured: Rows,
    by: Sequence[str] = ("moving", "fixed"),
    digits: int = 12,
    skip: Iterable[str] = (),
) -> tuple[list[str], list[str]]:
    """Compare every measured per-pair row with the reference row of the same pair, metric by metric.

    Args:
        reference, measured: :func:`normalise_rows` output.
        by: the columns that identify a pair in both (each measured row must match exactly one reference row); empty:
            the measured rows are the first reference rows, in order.
        digits: decimals the reference was rounded to (its rounding unit is added to each tolerance).
        skip: columns not compared.

    Returns:
        ``(compared "method/column" names, problems)``.
    """
    compared, problems, skip = [], [], set(skip)
    for method in ("none", "network"):
        if not measured.get(method):
            problems.append(f"{method}: no measured rows")
            continue
        for i, row in enumerate(measured[method]):
            ref_rows = reference.get(method, [])
            if by:
                found = [r for r in ref_rows if all(r.get(k) == row.get(k) for k in by)]
            else:
                found = ref_rows[i : i + 1]
            if len(found) != 1:
                problems.append(f"{method} pair {[row.get(k) for k in by] or i}: {len(found)} reference rows")
                continue
            name = row.get("pair", i)
            keys = [
                k
                for k, v in row.items()
                if k in found[0]
                and k not in ID_KEYS
                and k not in skip
                and not ROW_SKIP.search(k)
                and isinstance(v, (int, float))
            ]
            if len(keys) < 2:
                problems.append(f"{method} pair {name}: only {keys} in common with the reference")
            for key in keys:
                problem = _check(key, float(found[0][key]), float(row[key]), 10.0**-digits)
                if problem:
                    problems.append(f"{method} pair {name}: {problem}")
            compared += [f"{method}/{k}" for k in keys if f"{method}/{k}" not in compared]
    return compared, problems


def published_metrics(bundle: str) -> dict[str, float]:
    """``eval_metrics`` of ``bundles/<bundle>/configs/metadata.json``."""
    return json.loads((BUNDLES_DIR / bundle / "configs" / "metadata.json").read_text())["eval_metrics"]


def docs_results(bundle: str) -> dict[str, Any]:
    """``bundles/<bundle>/docs/results/results.json``."""
    return json.loads((BUNDLES_DIR / bundle / "docs" / "results" / "results.json").read_text())


def zero_output_layer(weights: Path, out: Path) -> Path:
    """Save ``weights`` with the network's output layer zeroed (LocalNet ``output_block``, VoxelMorph
    ``final_conv_out``): the network then predicts a zero DDF, i.e. no registration. Returns ``out``."""
    state = torch.load(weights, map_location="cpu", weights_only=True)
    hit = [k for k in state if "output_block" in k or "final_conv_out" in k]
    if not hit:
        raise KeyError(f"{weights}: no output layer among {list(state)[-4:]}")
    torch.save({k: torch.zeros_like(v) if k in hit else v for k, v in state.items()}, out)
    return out


def _absolute(base: Path, value: Any) -> Any:
    """``base / value`` when ``value`` names a file or folder there (a path in a pairs entry), else ``value``."""
    return str(base / value) if isinstance(value, str) and (base / value).exists() else value


def bundle_view(bundle: str, root: Path, data: Mapping[str, Any]) -> Path:
    """A folder ``root/<bundle>`` whose ``configs`` and ``models`` link to the bundle's and whose ``data/`` holds
    ``data``: ``{relative path: pairs list (written as JSON, paths made absolute) or a path to link to}``."""
    src, view = BUNDLES_DIR / bundle, root / bundle
    (view / "data").mkdir(parents=True)
    for sub in ("configs", "models"):
        (view / sub).symlink_to(src / sub, target_is_directory=True)
    for rel, value in data.items():
        path = view / "data" / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(value, list):
            base = src / "data" / Path(rel).parent
            path.write_text(json.dumps([{k: _absolute(base, v) for k, v in p.items()} for p in value]))
        else:
            path.symlink_to(value, target_is_directory=Path(value).is_dir())
    return view


def first_pairs(bundle: str, rel: str, n: int) -> list[dict]:
    """The first ``n`` entries of ``bundles/<bundle>/data/<rel>``."""
    return json.loads((BUNDLES_DIR / bundle / "data" / rel).read_text())[:n]


def run_script(bundle: str, argv: Sequence[str]) -> dict[str, Any]:
    """``bundles/<bundle>/scripts/evaluate.py`` ``main(argv)`` (``argv`` must hold ``--output``); returns the
    ``results.json`` it writes."""
    module = load_bundle_script(BUNDLES_DIR / bundle, "evaluate")
    assert module.main([str(a) for a in argv]) == 0
    out = Path(argv[list(argv).index("--output") + 1])
    return json.loads((out / "results.json").read_text())


# ------------------------------------------------------------------------------------------------ whole held-out sets
def _script(bundle: str, argv: Sequence[str] = (), weights: str | None = "--weights"):
    """Runner of :class:`Case`: ``main(argv + --output <tmp> [<weights option> <weights>])``; ``weights`` is the
    option, None for a script without one, or, with a ``{}``, the format of the value of ``argv``'s last option
    (``combined={}``)."""

    def run(tmp: Path, path: Path | None) -> dict[str, float]:
        args = list(argv)
        if weights and "{}" in weights:
            args[-1] = weights.format(path or "models/model.pt")
        elif path is not None:
            if weights is None:
                raise ValueError(f"{bundle}: its evaluate.py takes no weights option")
            args += [weights, path]
        return run_script(bundle, [*args, "--output", tmp])["eval_metrics"]

    return run


def _lung(bundle: str) -> Callable[[Path, Path | None], dict[str, float]]:
    """The lung CT bundles: ``--splits test --methods none --networks combined=<weights>``."""
    return _script(bundle, ["--splits", "test", "--methods", "none", "--networks", ""], "combined={}")


def _abdomen(sets: Sequence[str]) -> Callable[[Path, Path | None], dict[str, float]]:
    """unpaired_ct_abdomen: its ``main`` always runs all three trainings; run the combined one (``models/model.pt``)
    alone on ``sets`` through the script's own functions, as its ``run`` does."""

    def run(tmp: Path, weights: Path | None) -> dict[str, float]:
        from monai_reg_ext import evaluation as ev
        from monai_reg_ext.bundle import load_bundle

        bundle = BUNDLES_DIR / "unpaired_ct_abdomen"
        module = load_bundle_script(bundle, "evaluate")
        torch.manual_seed(0)
        model = load_bundle(bundle, weights=weights or bundle / "models" / "model.pt")
        nets = {"combined": ev.network(model)}
        settings = {"test": (model.spatial_size, module.ORGANS), "slab": (None, module.SLAB_MEAN_ORGANS)}
        results = {}
        for name in sets:
            size, organs = settings[name]
            results[name] = module.evaluate_set(module.load_pairs(bundle / "data" / name, size), nets, organs)
        spec = {k: v for k, v in module.EVAL_METRICS.items() if v[0] in results and v[1] in ("combined", "before")}
        return ev.round_metrics({k: results[s]["summary"][m][key]["mean"] for k, (s, m, key) in spec.items()}, 4)

    return run


ZERO_BACKBONE = {"_target_": "torch.nn.Conv3d", "in_channels": 2, "out_channels": 3, "kernel_size": 1}
"""A 1x1 convolution whose weights are saved as zeros: the network then predicts a zero DDF (no registration)."""


def _universal(tmp: Path, weights: Path | None) -> dict[str, float]:
    """universal_3d (no evaluate.py): its ``evaluate.json`` workflow on the 20 synthetic test pairs, with the weights
    and with a zero backbone (the published no-registration row: a zero DDF; CorrelationNet has no output layer to
    zero)."""
    bundle = BUNDLES_DIR / "universal_3d"
    weights = weights or bundle / "models" / "model.pt"
    identity = tmp / "identity.pt"
    zero = torch.nn.Conv3d(2, 3, 1)
    torch.save({f"backbone.{k}": torch.zeros_like(v) for k, v in zero.state_dict().items()}, identity)
    out = {}
    runs = (
        (weights, "synthetic_test_", {}),
        (identity, "synthetic_test_no_registration_", {"network_def#backbone": ZERO_BACKBONE}),
    )
    threads = torch.get_num_threads()
    for ckpt, prefix, override in runs:
        csv = run_bundle_evaluation(bundle, bundle / "data", tmp / prefix, ckpt, num_threads=threads, **override)
        values = {k: float(v) for k, v in (line.split(",") for line in csv.strip().splitlines())}
        out[prefix + "mean_dice"] = values["val_mean_dice"]
        if ckpt is weights:
            out[prefix + "folding_fraction"] = values["val_folding_fraction"]
            out[prefix + "sd_log_jacobian"] = values["val_sd_log_jacobian"]
    return {k: round(v, 4) for k, v in out.items()}


@dataclass(frozen=True)
class Case:
    """One network bundle's whole held-out set: ``run(tmp, weights)`` -> the measured ``eval_metrics`` (``weights``
    None: ``models/model.pt``), the decimals the bundle's script rounds to (:func:`compare`), published keys left
    out (another mode or set), whether it is too slow for the default suite, its test id (default: the bundle), and
    ``drift``: why the published numbers are known not to reproduce (the test is then a strict xfail)."""

    bundle: str
    run: Callable[[Path, Path | None], dict[str, float]]
    digits: int | Mapping[str, int] = 4
    skip: tuple[str, ...] = ()
    slow: bool = False
    name: str = ""
    drift: str = ""

    @property
    def id(self) -> str:
        return self.name or self.bundle

    def ignore(self, key: str) -> bool:
        return bool(NOT_COMPARED.search(key)) or key in self.skip


def _digits(bundle: str, rule: Callable[[str], int]) -> dict[str, int]:
    return {k: rule(k) for k in published_metrics(bundle)}


ABDOMEN_SLAB = ("slab_mean_dice", "slab_no_registration_mean_dice")

MEANS = [
    Case("paired_ct_lung", _lung("paired_ct_lung"), slow=True),
    Case("unpaired_ct_lung", _lung("unpaired_ct_lung")),
    Case(
        "unpaired_mr_brain",
        _script("unpaired_mr_brain", ["--methods", "none", "network", "--threads", "1"], None),
        digits=_digits("unpaired_mr_brain", lambda k: 2 if k.endswith("_mm") else 3),
        slow=True,
    ),
    Case(
        "paired_mrus_brain",
        _script("paired_mrus_brain", ["--threads", "1"], None),
        digits=_digits("paired_mrus_brain", lambda k: 3 if "dice" in k else 2),
    ),
    Case("paired_mrus_prostate", _script("paired_mrus_prostate"), slow=True),
    Case("unpaired_us_prostate_cv", _script("unpaired_us_prostate_cv")),
    Case("grouped_mask_prostate_longitudinal", _script("grouped_mask_prostate_longitudinal"), slow=True),
    Case(
        "grouped_mr_heart",
        _script("grouped_mr_heart", ["--mode", "3d"]),
        digits=3,
        skip=tuple(k for k in published_metrics("grouped_mr_heart") if k.startswith("cine2d_")),
    ),
    Case(
        "grouped_mr_heart",
        _script("grouped_mr_heart", ["--mode", "2d", "--weights", BUNDLES_DIR / "grouped_mr_heart/models/model_2d.pt"]),
        digits=3,
        skip=tuple(k for k in published_metrics("grouped_mr_heart") if not k.startswith("cine2d_")),
        slow=True,
        name="grouped_mr_heart_2d",
    ),
    Case(
        "grouped_us_echo_2d",
        _script("grouped_us_echo_2d"),
        digits=_digits(
            "grouped_us_echo_2d",
            lambda k: 5 if k.endswith(("_ssd", "folding_fraction")) else 3 if k.endswith(("_px", "jacobian")) else 4,
        ),
        slow=True,
    ),
    Case(
        "unpaired_ct_abdomen",
        _abdomen(["slab"]),
        skip=tuple(k for k in published_metrics("unpaired_ct_abdomen") if k not in ABDOMEN_SLAB),
        name="unpaired_ct_abdomen_slab",
    ),
    Case("unpaired_ct_abdomen", _abdomen(["test", "slab"]), slow=True),
    Case("universal_3d", _universal, digits={"synthetic_test_sd_log_jacobian": 3}, slow=True),
]


# ------------------------------------------------------------------------------------------------ a few pairs each
@dataclass(frozen=True)
class PairCase:
    """One to four held-out pairs of a bundle: ``run(tmp, weights)`` -> the measured rows, ``reference()`` -> the
    rows of ``docs/results/results.json`` (both :func:`normalise_rows`), matched ``by`` those columns (empty: in
    order), the reference's rounding ``digits`` and the columns not compared."""

    bundle: str
    run: Callable[[Path, Path | None], Rows]
    reference: Callable[[], Rows]
    by: tuple[str, ...] = ("moving", "fixed")
    digits: int = 12
    skip: tuple[str, ...] = ()


def _rows(results: Mapping[str, Any], *path: str) -> Rows:
    for key in path:
        results = results[key]
    return normalise_rows(results)


def _prostate(tmp: Path, weights: Path | None) -> Rows:
    pairs = write_absolute_pairs(
        first_pairs("paired_mrus_prostate", "test_pairs.json", 2),
        BUNDLES_DIR / "paired_mrus_prostate" / "data",
        tmp / "pairs.json",
    )
    argv = ["--pairs", pairs, "--output", tmp / "out", *(["--weights", weights] if weights else [])]
    return _rows(run_script("paired_mrus_prostate", argv), "pairs")


def _paired_lung(tmp: Path, weights: Path | None) -> Rows:
    view = bundle_view("paired_ct_lung", tmp, {"test/pairs.json": first_pairs("paired_ct_lung", "test/pairs.json", 1)})
    argv = [
        "--bundle",
        view,
        "--splits",
        "test",
        "--methods",
        "none",
        "--networks",
        f"combined={weights or 'models/model.pt'}",
    ]
    return _rows(run_script("paired_ct_lung", [*argv, "--output", tmp / "out"]), "splits", "test", "pairs")


def _mr_brain(tmp: Path, weights: Path | None) -> Rows:
    view = bundle_view(
        "unpaired_mr_brain", tmp, {"test/pairs.json": first_pairs("unpaired_mr_brain", "test/pairs.json", 1)}
    )
    argv = ["--bundle", view, "--methods", "none", "network", "--threads", "1", "--output", tmp / "out"]
    return _rows(run_script("unpaired_mr_brain", argv), "pairs")


def _mask_prostate(tmp: Path, weights: Path | None) -> Rows:
    """Visits 0 and 1 of test patient 001 (its two ordered pairs)."""
    src = BUNDLES_DIR / "grouped_mask_prostate_longitudinal" / "data" / "test" / "images" / "patient_001"
    group = tmp / "data" / "images" / "patient_001"
    group.mkdir(parents=True)
    for name in ("visit_0.nii.gz", "visit_1.nii.gz"):
        (group / name).symlink_to(src / name)
    argv = ["--data", tmp / "data", "--output", tmp / "out", *(["--weights", weights] if weights else [])]
    return _rows(run_script("grouped_mask_prostate_longitudinal", argv), "pairs")


def _echo(tmp: Path, weights: Path | None) -> Rows:
    """The first 4 frames of test group echo_t096 (its 12 ordered pairs; cycles of step 1 only, which the reference
    rows do not hold)."""
    src = BUNDLES_DIR / "grouped_us_echo_2d" / "data" / "test" / "images" / "echo_t096"
    frames = {f"test/images/echo_t096/{p.name}": p for p in sorted(src.glob("*.nii*"))[:4]}
    view = bundle_view("grouped_us_echo_2d", tmp, frames)
    argv = ["--bundle", view, "--steps", "1", "--output", tmp / "out", *(["--weights", weights] if weights else [])]
    return _rows(run_script("grouped_us_echo_2d", argv), "pairs")


def _lung_reference() -> Rows:
    return normalise_rows({m: v["pairs"] for m, v in docs_results("paired_ct_lung")["splits"]["test"].items()})


PAIRS = [
    PairCase("paired_ct_lung", _paired_lung, _lung_reference, by=("pair",)),
    PairCase("unpaired_mr_brain", _mr_brain, lambda: _rows(docs_results("unpaired_mr_brain"), "pairs"), by=()),
    PairCase(
        "paired_mrus_prostate", _prostate, lambda: _rows(docs_results("paired_mrus_prostate"), "pairs"), by=("pair",)
    ),
    PairCase(
        "grouped_mask_prostate_longitudinal",
        _mask_prostate,
        lambda: _rows(docs_results("grouped_mask_prostate_longitudinal"), "per_pair"),
        digits=5,
    ),
    PairCase(
        "grouped_us_echo_2d",
        _echo,
        lambda: _rows(docs_results("grouped_us_echo_2d"), "pairs"),
        by=("group", "moving", "fixed"),
        skip=("mean_displacement_px_in_fan",),  # the fan is the union over the group's frames: 4 here, 12 there
    ),
]
