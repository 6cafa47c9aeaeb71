"""monai_reg_ext.evaluation.script and ``monai-reg evaluate --pairs``: the bundle-script helpers end to end."""

from __future__ import annotations

import json
import shutil

import pytest

from monai_reg_ext import cli
from monai_reg_ext import evaluation as ev


def test_method_names_and_labels():
    assert ev.method_names(["a", "b"], ["ants_syn", "none"], 50) == [
        "none",
        "network:a",
        "network:b",
        "network:a+io50",
        "ants_syn",
    ]
    assert ev.method_label("none") == "no registration"
    assert ev.method_label("network:a+io50") == "network, a + instance optimisation × 50"


def test_bundle_splits_and_publish(tiny_bundle, blob_pairs, tmp_path):
    test_dir = tiny_bundle / "data" / "test"
    shutil.copytree(blob_pairs.parent, test_dir)
    (tiny_bundle / "configs" / "metadata.json").write_text(json.dumps({"version": "0.1.0", "eval_metrics": {}}))
    ap = ev.add_method_arguments(
        ev.script_parser("Test.\n\nMore.", tiny_bundle), ["test"], {"c": "models/model.pt"}, []
    )
    args = ev.parse_script_args(ap, ["--output", str(tmp_path / "out"), "--threads", "1"])
    assert args.output == tmp_path / "out" and args.networks == ["c=models/model.pt"]
    results = ev.evaluate_bundle_splits(args, ev.known_ddf_metrics())
    assert results["methods"] == ["none", "network:c"] and results["skipped"] == {}
    summary = results["splits"]["test"]["summary"]
    md = ev.splits_markdown(results, [ev.Column("Dice GM", "dice_gm")])
    assert md.startswith("### split `test` (1 pairs; subjects: )") and "| network, c |" in md
    spec = ev.eval_metrics_spec({"dice_gm": "dice_gm"}, {"test_seconds": "seconds"}, method="network:c")
    assert list(spec) == ["test_mean_dice_gm", "test_seconds", "no_registration_mean_dice_gm"]
    metrics = ev.publish(
        args.output, results, ev.select_eval_metrics(summary, spec), 3, tiny_bundle / "configs" / "metadata.json", md
    )
    assert json.loads((tiny_bundle / "configs" / "metadata.json").read_text())["eval_metrics"] == metrics
    assert (args.output / "figure_test_fix_before.png").is_file() and (args.output / "results.md").read_text() == md


def test_cli_evaluate_pairs(tiny_bundle, blob_pairs, tmp_path, capsys):
    out = tmp_path / "ev"
    assert cli.evaluate(
        str(tiny_bundle), pairs=str(blob_pairs), output=str(out), methods="none,network,true_ddf"
    ) == str(out)
    res = json.loads((out / "results.json").read_text())
    assert res["methods"] == ["none", "network", "true_ddf"]
    assert res["summary"]["true_ddf"]["dice_label0"]["mean"] > res["summary"]["none"]["dice_label0"]["mean"]
    assert "| no registration |" in capsys.readouterr().out
    with pytest.raises(FileExistsError, match="--overwrite"):
        cli.evaluate(str(tiny_bundle), pairs=str(blob_pairs), output=str(out))
    with pytest.raises(ValueError, match="unknown method"):
        cli.evaluate(str(tiny_bundle), pairs=str(blob_pairs), output=str(out), methods="none,foo", overwrite=True)
