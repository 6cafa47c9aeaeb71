"""monai_reg_ext.evaluation.compare on a tiny pair with a known constant-translation true DDF."""

from __future__ import annotations

import json

import numpy as np
import pytest

from monai_reg_ext import evaluation as ev
from monai_reg_ext.evaluation import peers

from .conftest import BLOB_SPACING, SHIFT


def test_none_true_and_network(tmp_path, blob_pairs, tiny_bundle, monkeypatch):
    monkeypatch.setenv("ITK_GLOBAL_DEFAULT_NUMBER_OF_THREADS", "1")  # restored after the test
    out = tmp_path / "out"
    res = ev.compare_methods(blob_pairs, bundle=tiny_bundle, methods="none,network", output=out, threads=1)
    assert res["methods"] == ["none", "network", "true_ddf"]
    rows = {m: r[0] for m, r in res["pairs"].items()}
    # identity: the error is the true translation, |SHIFT| voxels of 2 mm, everywhere in the brain
    assert rows["none"]["error_mm"] == pytest.approx(float(np.linalg.norm(SHIFT)) * BLOB_SPACING, abs=1e-5)
    assert rows["none"]["folding_pct"] == 0.0 and rows["none"]["sdlogj"] == pytest.approx(0.0, abs=1e-6)
    assert rows["true_ddf"]["error_mm"] == pytest.approx(0.0, abs=1e-6)
    assert rows["true_ddf"]["sdlogj"] == pytest.approx(0.0, abs=1e-5)
    assert rows["true_ddf"]["dice_gm"] > rows["none"]["dice_gm"] and rows["true_ddf"]["dice_wm"] > 0.9
    assert rows["network"]["seconds"] > 0 and "network_seconds" in rows["network"]
    assert res["summary"]["none"]["dice_gm"]["n"] == 1
    for name in ("results.json", "results.csv", "results.md", "error_maps.png"):
        assert (out / name).is_file(), name
    assert (out / "results.md").read_text().startswith("| method | s/pair | Dice GM")
    assert json.loads((out / "results.json").read_text())["environment"]["torch_threads"] == 1


def test_unknown_method_and_skipped_peer(blob_pairs, tmp_path, monkeypatch, capsys):
    with pytest.raises(ValueError, match="unknown method"):
        ev.compare_methods(blob_pairs, methods="none,foo", output=tmp_path / "o", threads=1)
    monkeypatch.setattr(peers, "peer_available", lambda name: (False, "ModuleNotFoundError: no module"))
    res = ev.compare_methods(blob_pairs, methods="none,ants_syn", output=tmp_path / "o", threads=1, figure=False)
    assert res["methods"] == ["none", "true_ddf"] and "ants_syn" in res["skipped"]
    assert "note: skipping ants_syn" in capsys.readouterr().out
