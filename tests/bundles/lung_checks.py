"""Checks shared by the two lung CT bundles' tests (``paired_ct_lung``, ``unpaired_ct_lung``): a fake Learn2Reg lung
CT layout for their ``prepare_learn2reg_lung.py``, its error cases, the regeneration of their demo data from the
real chest CTs (``monai_reg_ext.demo.chest_ct``), and the tests both run (:class:`LungBundleChecks`)."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest

from tests.helpers import REPO_ROOT, check_shipped_weights, load_bundle_script, run_two_process_training


def make_fake_learn2reg_lung(src: Path, cases: Iterable[int], shape: tuple[int, int, int] = (12, 10, 8)) -> Path:
    """A fake copy of the Learn2Reg lung CT layout: ``src/scans`` and ``src/lungMasks`` hold
    ``case_<c:03d>_{insp,exp}.nii.gz`` of each case ``c`` (HU ~ N(-700, 100); the mask is HU < -700; identity affine).

    Returns ``src``.
    """
    import nibabel as nib

    for sub in ("scans", "lungMasks"):
        (src / sub).mkdir(parents=True)
    rng = np.random.default_rng(0)
    for c in cases:
        for phase in ("insp", "exp"):
            img = rng.normal(-700, 100, size=shape).astype(np.float32)
            nib.save(nib.Nifti1Image(img, np.eye(4)), str(src / "scans" / f"case_{c:03d}_{phase}.nii.gz"))
            mask = (img < -700).astype(np.uint8)
            nib.save(nib.Nifti1Image(mask, np.eye(4)), str(src / "lungMasks" / f"case_{c:03d}_{phase}.nii.gz"))
    return src


def check_learn2reg_lung_prepare_errors(prep: ModuleType, src: Path, prepared: Path, missing: Path) -> None:
    """A lung CT bundle's ``prepare_learn2reg_lung.prepare`` refuses to write into the non-empty ``prepared``
    folder, and, once the file ``missing`` of the fake layout ``src`` is deleted, names its case (``case_<c:03d>``)."""
    with pytest.raises(FileExistsError, match="not empty"):
        prep.prepare(str(src), str(prepared))
    missing.unlink()
    with pytest.raises(FileNotFoundError, match=missing.name.rsplit("_", 1)[0]):
        prep.prepare(str(src), str(prepared.parent / "other"))


def check_lung_ct_demo_data(bundle: Path) -> None:
    """A lung CT bundle's ``make_demo_data.check`` regenerates its shipped ``data`` identically from the
    TotalSegmentator 2.18.0 and pyradiomics source folders under ``downloads/`` (in the repository or beside it);
    skips the test when they are not there."""
    for base in (REPO_ROOT / "downloads", REPO_ROOT.parent / "downloads"):
        ts, pr = base / "ts" / "totalsegmentator-2.18.0", base / "pyradiomics_data"
        if ts.is_dir() and pr.is_dir():
            assert load_bundle_script(bundle, "make_demo_data").check(str(ts), str(pr), bundle / "data")
            return
    pytest.skip("the TotalSegmentator / pyradiomics source files are not under downloads/ (see docs/data.md)")


class LungBundleChecks:
    """The tests both lung CT bundles run: a test module subclasses this as ``Test...`` with ``bundle`` and
    ``weights`` (the shipped weight files) set, beside its module-scoped ``tiny_data`` fixture."""

    bundle: Path
    weights: tuple[str, ...] = ("model.pt",)

    def test_shipped_weights_load_safely(self):
        for weights in self.weights:
            check_shipped_weights(self.bundle, (32, 28, 32), weights)

    @pytest.mark.slow
    def test_demo_data_is_reproducible(self):
        check_lung_ct_demo_data(self.bundle)

    @pytest.mark.slow
    def test_two_process_training_on_cpu(self, tiny_data, tmp_path):
        """torch.distributed data-parallel training (gloo, 2 CPU processes) through multi_gpu_train.json."""
        run_two_process_training(self.bundle, ["train.json"], tiny_data, tmp_path / "runs", spatial_size=[16, 16, 16])
