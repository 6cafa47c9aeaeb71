"""Tiny fixtures for the reliability suite: a bundle with a small LocalNet and 10^3 NIfTI images, made per module."""

from __future__ import annotations

import json

import nibabel as nib
import numpy as np
import pytest
import torch

from monai_reg_ext.networks import RegistrationNet

SHAPE = (10, 10, 10)
NET = {
    "_target_": "monai_reg_ext.networks.RegistrationNet",
    "backbone": "localnet",
    "method": "ddf",
    "spatial_dims": 3,
    "backbone_kwargs": {"num_channel_initial": 2, "extract_levels": [0, 1]},
}


def tiny_net() -> RegistrationNet:
    return RegistrationNet("localnet", "ddf", backbone_kwargs={"num_channel_initial": 2, "extract_levels": (0, 1)})


def blob(shape=SHAPE, center=None) -> np.ndarray:
    grid = np.stack(np.meshgrid(*[np.arange(s, dtype=np.float32) for s in shape], indexing="ij"))
    c = np.asarray(center if center is not None else [s / 2 for s in shape], np.float32).reshape(-1, 1, 1, 1)
    return np.exp(-((grid - c) ** 2).sum(0) / 8.0).astype(np.float32)


def write(path, arr, affine=None):
    nib.save(nib.Nifti1Image(np.asarray(arr), np.eye(4) if affine is None else affine), str(path))
    return path


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    """A bundle (8^3 grid, random output layer so the DDF is not zero) and a moving/fixed pair with labels."""
    return make_files(tmp_path_factory.mktemp("rel"))


def make_files(root) -> dict:
    """The files of :func:`files` in ``root`` (also used by ``scripts/reliability_cases.py``)."""
    bundle = root / "bundle"
    (bundle / "configs").mkdir(parents=True)
    (bundle / "models").mkdir()
    (bundle / "configs" / "inference.json").write_text(json.dumps({"spatial_size": [8, 8, 8], "network_def": NET}))
    torch.manual_seed(0)
    net = tiny_net()
    for p in net.parameters():
        if torch.count_nonzero(p) == 0:
            p.data.normal_(0, 0.05)
    torch.save(net.state_dict(), bundle / "models" / "model.pt")
    moving, fixed = blob(center=(4, 5, 5)), blob(center=(6, 5, 5))
    out = {"root": root, "bundle": bundle}
    for name, arr in (("moving", moving), ("fixed", fixed)):
        out[name] = write(root / f"{name}.nii.gz", arr)
        out[f"{name}_label"] = write(root / f"{name}_label.nii.gz", (arr > 0.5).astype(np.uint8))
    return out


def pairs_file(tmp_path, files, n: int, broken: dict[int, str] | None = None):
    """A predict pairs list of ``n`` copies of the ``files`` pair; ``broken`` replaces the moving image of some."""
    entry = {k: str(files[k]) for k in ("moving", "fixed", "moving_label", "fixed_label")}
    entries = [{**entry, "moving": (broken or {}).get(i, entry["moving"])} for i in range(n)]
    path = tmp_path / "pairs.json"
    path.write_text(json.dumps(entries))
    return path


def predict_argv(files, pairs, out, *extra) -> list[str]:
    """``monai-reg predict`` arguments for the ``files`` bundle on one CPU thread."""
    return ["predict", "--bundle", str(files["bundle"]), "--pairs", str(pairs), "--output", str(out), "--device",
            "cpu", "--threads", "1", *extra]  # fmt: skip
