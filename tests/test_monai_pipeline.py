"""The project's dict transforms inside a plain MONAI pipeline: ``Compose`` with MONAI's own transforms, a MONAI
``Dataset``/``DataLoader`` (worker processes, collation), and warping with a predicted DDF (``WarpImaged``)."""

from __future__ import annotations

import itertools

import nibabel as nib
import numpy as np
import pytest
import torch
from monai.data import DataLoader, Dataset, MetaTensor
from monai.transforms import AsDiscreted, Compose, ConcatItemsd, CopyItemsd, EnsureTyped, Lambdad

from monai_reg_ext.networks import RegistrationNet
from monai_reg_ext.transforms import (
    RandRegistrationAffined,
    RandRegistrationIntensityd,
    WarpImaged,
    registration_preprocessing,
)

KEYS = ("moving_image", "fixed_image", "moving_label", "fixed_label")
SIZE = (16, 16, 16)


def _subject(i: int) -> tuple[np.ndarray, np.ndarray]:
    grid = np.stack(np.meshgrid(*[np.arange(12)] * 3, indexing="ij"), 0).astype(np.float32)
    centre = np.array([5.5 + (i % 2), 5.5 - (i % 3) * 0.5, 5.5])[:, None, None, None]
    r2 = ((grid - centre) ** 2).sum(0)
    image = 100 * np.exp(-r2 / 12) + 5 * i
    return image.astype(np.float32), (r2 < 12).astype(np.float32)


@pytest.fixture
def pairs(tmp_path):
    """Three subjects as tiny NIfTI files (12^3 voxels, 2 mm) and every ordered (moving, fixed) pair."""
    files = []
    for i in range(3):
        image, label = _subject(i)
        affine = np.diag([2.0, 2.0, 2.0, 1.0])
        paths = {}
        for kind, arr in (("image", image), ("label", label)):
            paths[kind] = tmp_path / f"subject_{i}_{kind}.nii.gz"
            nib.save(nib.Nifti1Image(arr, affine), paths[kind])
        files.append(paths)
    return [
        {
            "moving_image": str(m["image"]),
            "fixed_image": str(f["image"]),
            "moving_label": str(m["label"]),
            "fixed_label": str(f["label"]),
        }
        for m, f in itertools.permutations(files, 2)
    ]


def _shift_ddf(fixed_image: MetaTensor) -> MetaTensor:
    """A stand-in for a DDF predicted beforehand (e.g. read from a file): one voxel along array axis 0."""
    ddf = torch.zeros(3, *fixed_image.shape[1:])
    ddf[0] = 1.0
    return MetaTensor(ddf, meta=dict(fixed_image.meta))


def _pipeline() -> Compose:
    return Compose(
        [
            registration_preprocessing(SIZE),  # load (NIfTI -> channel-first MetaTensor), check labels, resize, scale
            EnsureTyped(keys=KEYS, dtype=torch.float32),
            RandRegistrationAffined(rotate_range=0.1, scale_range=0.05),  # independent moving / fixed affines
            RandRegistrationIntensityd(noise_std=0.01),
            CopyItemsd(keys="moving_image", names="moving_image_augmented"),
            ConcatItemsd(keys=["moving_image", "fixed_image"], name="image"),  # the backbone's (2, *S) input
            Lambdad(keys="fixed_image", func=_shift_ddf, overwrite="ddf"),
            WarpImaged(
                keys=["moving_image", "moving_label"],
                ddf_key="ddf",
                mode=["bilinear", "nearest"],
                output_keys=["pred_fixed_image", "pred_fixed_label"],
            ),
        ]
    ).set_random_state(seed=0)


def test_compose_through_monai_dataloader(pairs):
    loader = DataLoader(Dataset(pairs, transform=_pipeline()), batch_size=2, num_workers=2, shuffle=False)
    batches = list(loader)
    assert len(batches) == 3
    for batch in batches:
        for key in (*KEYS, "pred_fixed_image", "pred_fixed_label"):
            assert tuple(batch[key].shape) == (2, 1, *SIZE), key
        assert tuple(batch["image"].shape) == (2, 2, *SIZE)
        assert tuple(batch["ddf"].shape) == (2, 3, *SIZE)
        assert 0.0 <= float(batch["moving_image"].min()) and float(batch["moving_image"].max()) <= 1.0
        # nearest picks existing label values (the labels are soft after resizing and bilinear augmentation)
        assert set(torch.unique(batch["pred_fixed_label"]).tolist()) <= set(
            torch.unique(batch["moving_label"]).tolist()
        )
        # pull semantics: warped[i] = moving[i + 1] along array axis 0 (the border voxel repeats)
        moving, warped = batch["moving_image"], batch["pred_fixed_image"]
        torch.testing.assert_close(warped[:, :, :-1], moving[:, :, 1:])
        torch.testing.assert_close(warped[:, :, -1], moving[:, :, -1])
        torch.testing.assert_close(batch["moving_image_augmented"], moving)
        assert isinstance(warped, MetaTensor)
        torch.testing.assert_close(warped.affine, batch["fixed_image"].affine)  # on the fixed grid
    # the augmentation ran (MONAI re-seeds the random transforms in each worker, so compare with plain preprocessing)
    plain = registration_preprocessing(SIZE)(pairs[0])
    assert not torch.allclose(batches[0]["moving_image"][0], plain["moving_image"], atol=1e-3)
    assert not torch.allclose(batches[0]["fixed_image"][0], plain["fixed_image"], atol=1e-3)


def test_warp_with_network_prediction(pairs):
    """A batch from the loader, a DDF predicted by a RegistrationNet, then WarpImaged as a MONAI post-transform."""
    pre = Compose([registration_preprocessing(SIZE), EnsureTyped(keys=KEYS, dtype=torch.float32)])
    batch = next(iter(DataLoader(Dataset(pairs, transform=pre), batch_size=2)))
    torch.manual_seed(0)
    net = RegistrationNet("localnet", method="ddf", spatial_dims=3, backbone_kwargs={"num_channel_initial": 2})
    with torch.no_grad():
        for p in net.parameters():  # leave the identity start: a non-zero predicted DDF
            p.add_(0.05 * torch.randn_like(p))
        out = net(batch["moving_image"], batch["fixed_image"], batch["moving_label"])
    assert float(out["ddf"].abs().max()) > 0.1
    post = Compose(
        [
            WarpImaged(
                keys=["moving_image", "moving_label"],
                ddf_key="ddf",
                output_keys=["pred_fixed_image", "pred_fixed_label"],
                batch=True,
            ),
            AsDiscreted(keys="pred_fixed_label", threshold=0.5),
        ]
    )
    result = post({**batch, "ddf": out["ddf"]})
    torch.testing.assert_close(result["pred_fixed_image"].as_tensor(), out["pred_fixed_image"])
    hard = (out["pred_fixed_label"] >= 0.5).float()
    torch.testing.assert_close(result["pred_fixed_label"].as_tensor(), hard)


def test_warp_imaged_errors():
    with pytest.raises(KeyError, match="no DDF at key 'ddf'"):
        WarpImaged(keys="moving_image")({"moving_image": torch.zeros(1, 4, 4)})
    with pytest.raises(ValueError, match="one output key per key"):
        WarpImaged(keys=["a", "b"], output_keys=["c"])
    with pytest.raises(ValueError, match="spatial dims"):
        WarpImaged(keys="m")({"m": torch.zeros(1, 4, 4), "ddf": torch.zeros(3, 4, 4, 4)})
