"""``monai-reg train --bundle PATH`` and ``evaluate --bundle PATH`` use PATH as the bundle root, wherever they run from
(issue 19, item 2): a copy of a bundle outside the repository trains and evaluates inside the copy, and neither the
repository's bundle nor a ``bundles/<name>`` folder under the current directory is read or written."""

from __future__ import annotations

import shutil
from pathlib import Path

from monai_reg_ext.cli import main
from tests.helpers import BUNDLES_DIR

BUNDLE = BUNDLES_DIR / "grouped_mask_prostate_longitudinal"
#: one short epoch on a 32 x 32 x 16 grid (two training patients: one iteration of batch 2)
SHORT = ["--max_epochs", "1", "--val_interval", "1", "--num_workers", "0", "--batch_size", "2",
         "--spatial_size", "[32,32,16]"]  # fmt: skip


def snapshot(*folders: Path) -> dict[Path, int]:
    """Modification times of every file under ``folders`` (the parts of a bundle a run could write)."""
    return {p: p.stat().st_mtime_ns for f in folders if f.exists() for p in f.rglob("*") if p.is_file()}


def copy_bundle(dest: Path) -> Path:
    """configs/, models/ and LICENSE of the bundle, with two training, one validation and one test patient."""
    for part in ("configs", "models"):
        shutil.copytree(BUNDLE / part, dest / part)
    shutil.copy(BUNDLE / "LICENSE", dest / "LICENSE")
    for split, n in (("train", 2), ("val", 1), ("test", 1)):
        for patient in sorted((BUNDLE / "data" / split / "images").iterdir())[:n]:
            shutil.copytree(patient, dest / "data" / split / "images" / patient.name)
    return dest


def test_train_and_evaluate_use_the_given_bundle_root(tmp_path, monkeypatch, capfd):
    copy = copy_bundle(tmp_path / "elsewhere" / "my_copy")
    # the current folder holds bundles/<name>/configs, as the repository root does: it must not be used
    cwd = tmp_path / "cwd"
    shutil.copytree(BUNDLE / "configs", cwd / "bundles" / BUNDLE.name / "configs")
    monkeypatch.chdir(cwd)
    untouched = (BUNDLE / "runs", BUNDLE / "models", cwd)
    before = snapshot(*untouched)

    main(["train", "--bundle", str(copy), *SHORT, "--progress_bar", "True"])
    assert (copy / "runs" / "model.pt").is_file()
    err = capfd.readouterr().err
    assert "train: [1/1] 100%" in err and "loss=" in err  # Ignite's progress bar, asked for (stderr is no terminal)

    main(["evaluate", "--bundle", str(copy), "--spatial_size", "[32,32,16]", "--num_workers", "0"])
    assert "mean_dice" in (copy / "runs" / "eval" / "metrics.csv").read_text()
    assert "validate: [" not in capfd.readouterr().err  # no bar by default when stderr is not a terminal
    assert snapshot(*untouched) == before
