"""Figures à la DeepReg's ``deepreg_vis`` (issue 19, item 9): ``monai-reg show`` writes an animated GIF of moving ->
warped -> fixed, a GIF over the slices, a checkerboard of fixed and warped, the deformation grid of a DDF and a tile
plot over pairs, from tiny synthetic 2D and 3D NIfTI files."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import nibabel as nib  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402
from PIL import Image  # noqa: E402

from monai_reg_ext import cli, visualise  # noqa: E402
from monai_reg_ext.figures import FILE_NAMES, write_figures  # noqa: E402
from monai_reg_ext.io import save_ddf  # noqa: E402

SHAPE_3D = (12, 10, 8)
SHAPE_2D = (16, 12)


def _image(path: Path, array: np.ndarray) -> str:
    nib.save(nib.Nifti1Image(np.asarray(array, dtype=np.float32), np.eye(4)), str(path))
    return str(path)


def _pair(folder: Path, shape: tuple[int, ...], seed: int = 0, ddf_value: float = 0.0) -> dict[str, str]:
    """moving, fixed, warped (random images) and a constant DDF, all on one grid."""
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    moving, fixed = rng.random(shape), rng.random(shape)
    field = torch.full((len(shape), *shape), float(ddf_value))
    save_ddf(folder / "ddf.nii.gz", field, np.eye(len(shape) + 1))
    return {
        "moving": _image(folder / "moving.nii.gz", moving),
        "fixed": _image(folder / "fixed.nii.gz", fixed),
        "warped": _image(folder / "warped.nii.gz", 0.5 * (moving + fixed)),
        "ddf": str(folder / "ddf.nii.gz"),
    }


def _frames(path: Path) -> list[np.ndarray]:
    with Image.open(path) as im:
        out = []
        for k in range(im.n_frames):
            im.seek(k)
            out.append(np.asarray(im.convert("L")))
        return out


def test_show_3d_writes_every_figure_with_expected_frames(tmp_path, capsys):
    p = _pair(tmp_path / "in", SHAPE_3D)
    out = tmp_path / "figs"
    cli.main(
        ["show", "--moving", p["moving"], "--fixed", p["fixed"], "--warped", p["warped"], "--ddf", p["ddf"]]
        + ["--output", str(out)]
    )
    assert sorted(f.name for f in out.iterdir()) == sorted(FILE_NAMES.values())  # no temporary file left
    # moving, 3 intermediate warps (t = 1/4, 2/4, 3/4), the warped file, fixed
    gif = _frames(out / FILE_NAMES["gif"])
    assert len(gif) == 6
    # one frame per slice along the default axis 2, moving | warped | fixed side by side
    slices = _frames(out / FILE_NAMES["slices"])
    assert len(slices) == SHAPE_3D[2]
    zoom = gif[0].shape[1] // SHAPE_3D[0]  # the middle slice (12 x 10) enlarged, over the position bar
    assert gif[0].shape == (SHAPE_3D[1] * zoom + visualise.BAR_HEIGHT, SHAPE_3D[0] * zoom)
    assert slices[0].shape[1] == 3 * SHAPE_3D[0] * zoom + 2 * visualise.PANEL_GAP
    # the first frame is the moving image's middle slice, the last the fixed one's, in one grey window
    mov, fix = nib.load(p["moving"]).get_fdata(), nib.load(p["fixed"]).get_fdata()
    war = nib.load(p["warped"]).get_fdata()
    window = visualise.intensity_window(mov, fix, war)
    body = slice(0, -visualise.BAR_HEIGHT)
    np.testing.assert_array_equal(gif[0][body], visualise.to_display(mov[:, :, 4], window, zoom))
    np.testing.assert_array_equal(gif[-1][body], visualise.to_display(fix[:, :, 4], window, zoom))
    np.testing.assert_array_equal(gif[-2][body], visualise.to_display(war[:, :, 4], window, zoom))


def test_axis_chooses_the_slices(tmp_path):
    p = _pair(tmp_path / "in", SHAPE_3D)
    out = write_figures(p["moving"], p["fixed"], tmp_path / "f", figures="slices,gif", axis=0, zoom=1)
    assert sorted(out) == ["gif", "slices"]
    assert len(_frames(Path(out["slices"]))) == SHAPE_3D[0]
    assert len(_frames(Path(out["gif"]))) == 2  # no warped image, no DDF: moving then fixed
    assert _frames(Path(out["gif"]))[0].shape == (SHAPE_3D[2] + visualise.BAR_HEIGHT, SHAPE_3D[1])


def test_checkerboard_pixels_alternate_exactly(tmp_path):
    p = _pair(tmp_path / "in", SHAPE_2D, seed=3)
    out = write_figures(p["moving"], p["fixed"], tmp_path / "f", warped=p["warped"], figures="checkerboard", zoom=1)
    png = np.asarray(Image.open(out["checkerboard"]))
    fix, war, mov = (nib.load(p[k]).get_fdata() for k in ("fixed", "warped", "moving"))
    window = visualise.intensity_window(mov, fix, war)
    fix_px, war_px = visualise.to_display(fix, window), visualise.to_display(war, window)
    assert png.shape == (SHAPE_2D[1], SHAPE_2D[0]) and png.dtype == np.uint8
    # pixel (r, c) shows array voxel (i, j) = (c, H - 1 - r); 8 x 8 squares, fixed on the even ones
    r, c = np.mgrid[: png.shape[0], : png.shape[1]]
    i, j = c, SHAPE_2D[1] - 1 - r
    even = ((i * 8 // SHAPE_2D[0]) + (j * 8 // SHAPE_2D[1])) % 2 == 0
    np.testing.assert_array_equal(png[even], fix_px[even])
    np.testing.assert_array_equal(png[~even], war_px[~even])
    assert even.any() and (~even).any() and (fix_px != war_px).mean() > 0.9  # both images really show


def test_checkerboard_of_two_constant_images_is_black_and_white(tmp_path):
    img = visualise.checkerboard_image(np.zeros((8, 8)), np.ones((8, 8)), tiles=4, window=(0.0, 1.0), zoom=2)
    assert img.shape == (16, 16)
    squares = img[::4, ::4]  # one pixel per 2 x 2-voxel square
    assert set(np.unique(img)) == {0, 255}
    assert (squares[:, 1:] != squares[:, :-1]).all() and (squares[1:, :] != squares[:-1, :]).all()


def test_grid_of_zero_ddf_gives_straight_lines():
    fig, ax = plt.subplots()
    lines = visualise.plot_deformation_grid(ax, np.zeros((2, 9, 7)), step=2)
    assert len(lines) == 5 + 4  # rows 0, 2, 4, 6, 8 and columns 0, 2, 4, 6
    for k, line in enumerate(lines[:5]):
        np.testing.assert_array_equal(line.get_xdata(), np.full(7, 2 * k))
        np.testing.assert_array_equal(line.get_ydata(), np.arange(7))
    for k, line in enumerate(lines[5:]):
        np.testing.assert_array_equal(line.get_xdata(), np.arange(9))
        np.testing.assert_array_equal(line.get_ydata(), np.full(9, 2 * k))
    # a constant displacement moves every line, which stays straight
    shifted = visualise.plot_deformation_grid(ax, np.stack([np.full((9, 7), 1.5), np.full((9, 7), -0.5)]), step=2)
    np.testing.assert_allclose(shifted[1].get_xdata(), np.full(7, 3.5))
    np.testing.assert_allclose(shifted[1].get_ydata(), np.arange(7) - 0.5)
    plt.close(fig)


def test_grid_figure_from_a_zero_ddf_file(tmp_path):
    p = _pair(tmp_path / "in", SHAPE_2D)
    out = write_figures(p["moving"], p["fixed"], tmp_path / "f", ddf=p["ddf"], figures="grid,gif", zoom=1)
    assert Path(out["grid"]).stat().st_size > 0
    # moving, then the moving warped by t * ddf for t = 1/4 .. 1 (no warped file: the last step is the warped
    # image), then fixed; a zero DDF leaves the moving image as it is
    frames = _frames(Path(out["gif"]))
    assert len(frames) == 1 + 4 + 1
    first, second = (f[: -visualise.BAR_HEIGHT].astype(int) for f in frames[:2])
    assert np.abs(second - first).max() <= 1  # equal up to rounding of the interpolation


def test_tile_plot_over_pairs(tmp_path):
    a, b = _pair(tmp_path / "a", SHAPE_2D, 1), _pair(tmp_path / "b", SHAPE_2D, 2)
    out = write_figures(
        f"{a['moving']},{b['moving']}", [a["fixed"], b["fixed"]], tmp_path / "f", warped=[a["warped"], b["warped"]]
    )
    assert sorted(out) == ["pair_000/checkerboard", "pair_000/gif", "pair_001/checkerboard", "pair_001/gif", "tile"]
    assert all(Path(v).is_file() for v in out.values())
    assert Image.open(out["tile"]).size[1] > Image.open(out["tile"]).size[0] / 3  # two rows of five panels


def test_moving_on_another_grid_is_resampled(tmp_path):
    p = _pair(tmp_path / "in", SHAPE_2D)
    small = _image(tmp_path / "small_moving.nii.gz", np.random.default_rng(0).random((8, 6)))
    out = write_figures(small, p["fixed"], tmp_path / "f", warped=p["warped"], figures="gif", zoom=1)
    frames = _frames(Path(out["gif"]))
    assert len(frames) == 3 and frames[0].shape == (SHAPE_2D[1] + visualise.BAR_HEIGHT, SHAPE_2D[0])


def test_mismatched_shapes_name_the_file(tmp_path, capsys):
    p = _pair(tmp_path / "in", SHAPE_2D)
    other = _pair(tmp_path / "other", (10, 12))
    with pytest.raises(ValueError, match=r"warped image .*other/warped\.nii\.gz: shape \(10, 12\) differs"):
        write_figures(p["moving"], p["fixed"], tmp_path / "f", warped=other["warped"])
    with pytest.raises(ValueError, match=r"DDF .*other/ddf\.nii\.gz: shape \(10, 12\) differs"):
        write_figures(p["moving"], p["fixed"], tmp_path / "f", ddf=other["ddf"])
    with pytest.raises(SystemExit) as exc:
        cli.main(
            [
                "show",
                "--moving",
                p["moving"],
                "--fixed",
                p["fixed"],
                "--warped",
                other["warped"],
                "--output",
                str(tmp_path / "f"),
            ]
        )
    assert exc.value.code == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("monai-reg: error: warped image") and other["warped"] in err and "\n" not in err
    assert not (tmp_path / "f").exists()  # checked before anything is written


def test_never_overwrite_without_flag(tmp_path):
    p = _pair(tmp_path / "in", SHAPE_2D)
    out = write_figures(p["moving"], p["fixed"], tmp_path / "f", figures="checkerboard")
    before = Path(out["checkerboard"]).read_bytes()
    with pytest.raises(FileExistsError, match="--overwrite"):
        write_figures(p["moving"], p["fixed"], tmp_path / "f", warped=p["warped"], figures="checkerboard")
    assert Path(out["checkerboard"]).read_bytes() == before
    write_figures(p["moving"], p["fixed"], tmp_path / "f", warped=p["warped"], figures="checkerboard", overwrite=True)
    assert Path(out["checkerboard"]).read_bytes() != before


def test_bad_figure_requests(tmp_path):
    p = _pair(tmp_path / "in", SHAPE_2D)
    with pytest.raises(ValueError, match="unknown \\['movie'\\]"):
        write_figures(p["moving"], p["fixed"], tmp_path / "f", figures="gif,movie")
    with pytest.raises(ValueError, match="grid needs --ddf"):
        write_figures(p["moving"], p["fixed"], tmp_path / "f", figures="grid")
    with pytest.raises(ValueError, match="slices needs 3D"):
        write_figures(p["moving"], p["fixed"], tmp_path / "f", figures="slices")
    with pytest.raises(ValueError, match="one --fixed"):
        write_figures(f"{p['moving']},{p['moving']}", p["fixed"], tmp_path / "f")
