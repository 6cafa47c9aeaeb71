"""Run adversarial cases against the ``monai-reg`` CLI and Python API and print the Markdown table of
``docs/reliability.md`` (cases tried / handled, with the fuzzing count).

Sections: the rows of issue 20 (geometry, outputs and permissions, devices, ``warp``, ``predict``, training resume,
atomic writes), the bad-input cases of ``tests/reliability/test_bad_inputs.py``, the download / archive / index cases
of ``tests/reliability/test_archives.py``, and the property-based fuzzing of NIfTI headers and DDF files
(``tests/reliability/test_fuzz.py``). A case is *handled* when the command does what ``docs/reliability.md`` promises:
a user error is one line ``monai-reg: error: ...`` naming the file, exit status 2, no traceback and nothing written;
a valid but unusual input gives the right result.

    python scripts/reliability_cases.py                       # print the table (about 3 minutes on 2 cores)
    python scripts/reliability_cases.py --fuzz_examples 200 --output reliability_table.md
"""

from __future__ import annotations

import contextlib
import errno
import io
import json
import logging
import os
import re
import sys
import tempfile
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402
import torch  # noqa: E402

from monai_reg_ext import cli  # noqa: E402
from monai_reg_ext.io import save_ddf  # noqa: E402
from tests.reliability.conftest import SHAPE, blob, make_files  # noqa: E402


@dataclass
class Outcome:
    """How a case ended: ``handled`` as promised or not, and what happened (one short line)."""

    handled: bool
    text: str


CASES: list[tuple[str, str, Callable[[dict, Path], Outcome]]] = []


def case(row: str, expected: str):
    """Register ``fn(files, tmp) -> Outcome`` as the case ``row`` (an issue-table row) expecting ``expected``."""

    def add(fn: Callable[[dict, Path], Outcome]) -> Callable[[dict, Path], Outcome]:
        CASES.append((row, expected, fn))
        return fn

    return add


def run_cli(argv: list) -> tuple[int, str]:
    """``monai-reg ARGV`` in this process: exit status and stderr."""
    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        try:
            cli.main([str(a) for a in argv])
            code = 0
        except SystemExit as exit_info:
            code = int(exit_info.code or 0)
    return code, err.getvalue()


def refused(argv: list, names: str, match: str = "", untouched: Path | None = None) -> Outcome:
    """Handled when the command exits 2 with one error line naming ``names`` (and holding ``match``), no traceback,
    and ``untouched`` (a folder) holds what it held before."""
    before = _snapshot(untouched)
    code, err = run_cli(argv)
    lines = [line for line in err.splitlines() if line.startswith("monai-reg: error:")]
    line = lines[0] if lines else (err.strip().splitlines() or ["(nothing on stderr)"])[-1]
    ok = code == 2 and len(lines) == 1 and "Traceback" not in err and names in line and match in line
    ok = ok and _snapshot(untouched) == before
    return Outcome(ok, f"exit {code}: `{_short(line)}`")


def _snapshot(folder: Path | None) -> dict:
    if folder is None or not folder.exists():
        return {}
    return {p.relative_to(folder): p.read_bytes() for p in folder.rglob("*") if p.is_file()}


def _short(text: str, n: int = 140) -> str:
    text = text.replace("monai-reg: error: ", "")
    for tmp in {tempfile.gettempdir(), os.path.realpath(tempfile.gettempdir())}:
        text = re.sub(re.escape(tmp) + r"/tmp\w+(?:/tmp\w+)?", "…", text)  # the temporary folders of this run
    return text if len(text) <= n else text[: n - 1] + "…"


def _register(files: dict, out: Path, moving=None, fixed=None, *extra) -> list:
    pair = ["--moving", moving or files["moving"], "--fixed", fixed or files["fixed"]]
    return ["register", "--bundle", files["bundle"], *pair, "--output", out, "--device", "cpu", "--figure", "False",
            "--quiet", *extra]  # fmt: skip


def _nifti(path: Path, sform: np.ndarray, shape=SHAPE, qform: np.ndarray | None = None) -> Path:
    """A raw NIfTI whose sform is any matrix (singular, sheared...), pixdim from its column norms."""
    import nibabel as nib

    hdr = nib.Nifti1Header()
    hdr.set_data_shape(shape)
    hdr.set_data_dtype(np.float32)
    hdr.set_zooms(tuple(float(z) for z in np.linalg.norm(sform[:3, :3], axis=0)))
    if qform is not None:
        hdr.set_qform(qform, code=1)
    hdr["sform_code"] = 2 if qform is not None else 1
    hdr["srow_x"], hdr["srow_y"], hdr["srow_z"] = sform[:3]
    hdr["vox_offset"] = 352
    big = int(np.prod(shape)) > 10**6  # a lying header: 648 bytes of data, never the volume it declares
    data = np.zeros(162, np.float32) if big else blob(shape=shape, center=[s / 2 for s in shape]).astype(np.float32)
    path.write_bytes(hdr.binaryblock + b"\x00" * 4 + data.tobytes(order="F"))
    return path


def _ddf(path: Path) -> Path:
    torch.manual_seed(0)
    save_ddf(path, 0.5 * torch.randn(3, *SHAPE), np.eye(4))
    return path


@contextlib.contextmanager
def _failing_replace(code: int):
    """``os.replace`` of temporary outputs fails with ``code`` (EACCES, ENOSPC...): what a read-only folder or a full
    disk does to the last step of every write (root ignores permissions, so the error is simulated)."""
    real = os.replace

    def replace(src, dst):
        if Path(str(src)).name.startswith(".tmp-") or ".monai-reg-" in str(src):
            raise OSError(code, os.strerror(code), str(src))
        return real(src, dst)

    os.replace = replace
    try:
        yield
    finally:
        os.replace = real


# --- issue 20: geometry ---------------------------------------------------------------------------------------------


def _earlier_run_then(files: dict, tmp: Path, moving=None, fixed=None, names="", match="") -> Outcome:
    out = tmp / "out"
    run_cli(_register(files, out))  # an earlier good run, replaced with --overwrite only by a complete set
    return refused(_register(files, out, moving, fixed, "--overwrite"), names, match, untouched=out)


@case("fixed image with a sheared grid (CT gantry tilt)", "refused, earlier outputs kept")
def _sheared(files, tmp):
    lin = np.eye(4)
    lin[0, 2] = 0.35
    return _earlier_run_then(files, tmp, fixed=_nifti(tmp / "tilted.nii", lin), names="tilted.nii",
                             match="not orthogonal")  # fmt: skip


@case("moving image 10 m away (no overlap)", "refused")
def _far(files, tmp):
    aff = np.eye(4)
    aff[0, 3] = 10_000.0
    return _earlier_run_then(files, tmp, moving=_nifti(tmp / "far.nii", aff), names="far.nii", match="overlap")


@case("single-slice moving image", "refused")
def _slice(files, tmp):
    bad = _nifti(tmp / "slice.nii", np.eye(4), shape=(10, 10, 1))
    return _earlier_run_then(files, tmp, moving=bad, names="slice.nii", match="2 voxels")


@case("singular fixed affine, --overwrite over an earlier run", "refused, earlier outputs kept")
def _singular(files, tmp):
    bad = _nifti(tmp / "singular.nii", np.diag([1.0, 1.0, 0.0, 1.0]))
    return _earlier_run_then(files, tmp, fixed=bad, names="singular.nii", match="singular")


@case("NaN in the fixed image's sform", "refused")
def _nan_affine(files, tmp):
    aff = np.eye(4)
    aff[1, 1] = np.nan
    return refused(_register(files, tmp / "out", fixed=_nifti(tmp / "nan.nii", aff)), "nan.nii", "not finite")


@case("qform and sform of the fixed image disagree (ITK and nibabel read other grids)", "refused")
def _ambiguous(files, tmp):
    rot = np.array([[0.8, -0.6, 0, 0], [0.6, 0.8, 0, 0], [0, 0, 1, 0], [0, 0, 0, 1.0]])
    shifted = np.eye(4)
    shifted[0, 3] = 5.0
    bad = _nifti(tmp / "ambiguous.nii", rot, qform=shifted)
    return refused(_register(files, tmp / "out", fixed=bad), "ambiguous.nii", "ambiguous")


@case("header claiming 1000^3 voxels in a 1 kB file", "refused before allocating (under 30 s)")
def _huge_header(files, tmp):
    bad = _nifti(tmp / "huge.nii", np.eye(4), shape=(1000, 1000, 1000))
    t0 = time.perf_counter()
    out = refused(_register(files, tmp / "out", moving=bad), "huge.nii", "truncated")
    return Outcome(out.handled and time.perf_counter() - t0 < 30, out.text)


@case("header claiming 2000^3 voxels", "refused before allocating")
def _over_limit(files, tmp):
    bad = _nifti(tmp / "limit.nii", np.eye(4), shape=(2000, 2000, 2000))
    return refused(_register(files, tmp / "out", moving=bad), "limit.nii", "over the limit")


# --- issue 20: outputs, devices -------------------------------------------------------------------------------------


@case("output folder not writable (EACCES when writing)", "refused, no temporary file left")
def _not_writable(files, tmp):
    with _failing_replace(errno.EACCES):
        out = refused(_register(files, tmp / "out"), str(tmp / "out"), "Permission denied")
    left = [p for p in tmp.rglob("*") if p.name.startswith((".tmp-", ".monai-reg-"))]
    return Outcome(out.handled and not left, out.text)


@case("no space left on the device (ENOSPC when writing)", "refused")
def _no_space(files, tmp):
    with _failing_replace(errno.ENOSPC):
        return refused(_register(files, tmp / "out"), str(tmp / "out"), "No space left")


@case("output folder's parent is a file", "refused")
def _parent_file(files, tmp):
    (tmp / "afile").write_text("x")
    return refused(_register(files, tmp / "afile" / "out"), "afile", "is a file, not a folder")


@case("`--device cuda` on a CPU build (or a CUDA device that is not there)", "refused, for every command")
def _cuda(files, tmp):
    device = "cuda:99" if torch.cuda.is_available() else "cuda"
    return _every_command(files, tmp, device)


@case("`--device gpu0`", "refused, for every command")
def _gpu0(files, tmp):
    return _every_command(files, tmp, "gpu0")


def _every_command(files: dict, tmp: Path, device: str) -> Outcome:
    pairs = tmp / "pairs.json"
    pairs.write_text(json.dumps([{"moving": str(files["moving"]), "fixed": str(files["fixed"])}]))
    argvs = [
        ["register", "--bundle", files["bundle"], "--moving", files["moving"], "--fixed", files["fixed"],
         "--output", tmp / "r", "--device", device],
        ["predict", "--bundle", files["bundle"], "--pairs", pairs, "--output", tmp / "p", "--device", device],
        ["evaluate", "--bundle", files["bundle"], "--pairs", pairs, "--output", tmp / "e", "--device", device],
        ["train", "--bundle", ROOT / "bundles" / "unpaired_mr_brain", "--device", device, "--output_dir", tmp / "t"],
    ]  # fmt: skip
    outcomes = [refused(argv, f"'{device}'") for argv in argvs]
    return Outcome(all(o.handled for o in outcomes), outcomes[0].text + " (register, predict, evaluate, train)")


@case("`--debug` with a user error", "traceback, then the one line, exit 2")
def _debug(files, tmp):
    code, err = run_cli(["warp", "--image", tmp / "missing.nii.gz", "--ddf", _ddf(tmp / "d.nii.gz"), "--output",
                         tmp / "w.nii.gz", "--debug"])  # fmt: skip
    ok = code == 2 and "Traceback (most recent call last)" in err and "monai-reg: error:" in err.splitlines()[-1]
    return Outcome(ok, f"exit {code}, traceback {'shown' if 'Traceback' in err else 'missing'}")


# --- issue 20: warp -------------------------------------------------------------------------------------------------


def _warp(files: dict, tmp: Path, output: Path, ddf: Path | None = None) -> list:
    return ["warp", "--image", files["moving"], "--ddf", ddf or _ddf(tmp / "ddf.nii.gz"), "--output", output]


@case("`warp` with a truncated DDF (.nii.gz, .nii, .mha, .nrrd)", "refused")
def _truncated_ddf(files, tmp):
    outcomes = []
    for suffix in (".nii.gz", ".nii", ".mha", ".nrrd"):
        good = _ddf(tmp / f"ddf{suffix}")
        bad = tmp / f"trunc{suffix}"
        bad.write_bytes(good.read_bytes()[: good.stat().st_size * 2 // 3])
        outcomes.append(refused(_warp(files, tmp, tmp / "w.nii.gz", bad), bad.name))
    return Outcome(all(o.handled for o in outcomes) and not (tmp / "w.nii.gz").exists(), outcomes[0].text)


@case("`warp --output x.mha`", "written on the DDF grid")
def _warp_mha(files, tmp):
    import SimpleITK as sitk

    code, err = run_cli(_warp(files, tmp, tmp / "x.mha"))
    ok = code == 0 and (tmp / "x.mha").is_file()
    if ok:
        img = sitk.ReadImage(str(tmp / "x.mha"))
        ok = img.GetSize() == SHAPE and np.allclose(img.GetSpacing(), 1.0) and np.allclose(img.GetOrigin(), 0.0)
    return Outcome(ok, f"exit {code}, {SHAPE} grid, spacing 1, origin 0" if ok else err.strip()[-140:])


@case("`warp --output x.png`", "refused")
def _warp_png(files, tmp):
    return refused(_warp(files, tmp, tmp / "x.png"), "x.png", ".nii, .nii.gz, .mha, .nrrd")


@case("`warp --output out/warped` (no extension)", "refused, nothing left in out/")
def _warp_no_suffix(files, tmp):
    out = refused(_warp(files, tmp, tmp / "out" / "warped"), "warped", ".nii, .nii.gz, .mha, .nrrd")
    return Outcome(out.handled and not (tmp / "out").exists(), out.text)


@case("`warp` into an unwritable output (EACCES when writing)", "refused, no temporary file left")
def _warp_unwritable(files, tmp):
    ddf = _ddf(tmp / "ddf.nii.gz")
    with _failing_replace(errno.EACCES):
        out = refused(_warp(files, tmp, tmp / "w.nii.gz", ddf), "w.nii.gz", "Permission denied")
    left = [p for p in tmp.iterdir() if p.name.startswith(".tmp-")]
    return Outcome(out.handled and not left and not (tmp / "w.nii.gz").exists(), out.text)


# --- issue 20: predict ----------------------------------------------------------------------------------------------


@case("`predict` whose 2nd of 3 pairs is truncated", "pairs 1 and 3 written, status.csv, exit 2 with a summary")
def _predict_truncated(files, tmp):
    trunc = tmp / "trunc.nii.gz"
    trunc.write_bytes(Path(files["moving"]).read_bytes()[:200])
    good = {"moving": str(files["moving"]), "fixed": str(files["fixed"])}
    (tmp / "pairs.json").write_text(json.dumps([good, {**good, "moving": str(trunc)}, good]))
    out = tmp / "out"
    argv = ["predict", "--bundle", files["bundle"], "--pairs", tmp / "pairs.json", "--output", out, "--device", "cpu"]
    result = refused(argv, "trunc.nii.gz", "1 of 3 pairs failed")
    names = sorted(p.name for p in out.iterdir()) if out.exists() else []
    ok = names == ["metrics.csv", "pair_000", "pair_002", "status.csv", "summary.csv"]
    return Outcome(result.handled and ok, result.text)


@case("`predict` whose pairs file names a missing image", "refused before writing anything")
def _predict_missing(files, tmp):
    good = {"moving": str(files["moving"]), "fixed": str(files["fixed"])}
    (tmp / "pairs.json").write_text(json.dumps([good, {**good, "fixed": str(tmp / "nope.nii.gz")}]))
    argv = ["predict", "--bundle", files["bundle"], "--pairs", tmp / "pairs.json", "--output", tmp / "out"]
    result = refused(argv, "nope.nii.gz", "entry 1")
    return Outcome(result.handled and not (tmp / "out").exists(), result.text)


# --- issue 20: training and atomic writes ---------------------------------------------------------------------------


@case("`create_trainer(resume_from=...)` with a truncated checkpoint", "one-line ValueError naming the file")
def _resume_truncated(files, tmp):
    from tests.reliability import train_tiny

    _, _, trainer = train_tiny.build(str(tmp / "run"), max_epochs=1)
    trainer.run()
    good = tmp / "run" / "checkpoint_epoch=1.pt"
    bad = tmp / "truncated.pt"
    bad.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    try:
        train_tiny.build(str(tmp / "resumed"), max_epochs=2, resume_from=str(bad))
    except ValueError as err:
        return Outcome(str(bad) in str(err) and "\n" not in str(err), f"`ValueError: {_short(str(err))}`")
    return Outcome(False, "no error")


@case("resumed training vs uninterrupted (shuffled loader with a generator, random transforms)",
      "same losses (1e-6)")  # fmt: skip
def _resume_rng(files, tmp):
    from tests.reliability.test_resume_rng import _train

    full = _train(tmp / "full", 3)
    _train(tmp / "first", 2)
    resumed = _train(tmp / "resumed", 3, resume_from=str(tmp / "first" / "checkpoint_epoch=2.pt"))
    worst = max(abs(v - full[k]) / max(abs(full[k]), 1e-12) for k, v in resumed.items())
    return Outcome(worst <= 1e-6 and len(resumed) == 4, f"iterations 9-12, largest relative difference {worst:.1e}")


@case("`save_checkpoint` interrupted while writing", "previous file intact, no temporary file")
def _save_checkpoint(files, tmp):
    from monai_reg_ext.networks import save_checkpoint
    from tests.reliability.conftest import tiny_net

    path = save_checkpoint(tiny_net(), tmp / "net.pt")
    good, real = path.read_bytes(), torch.save

    def crash(obj, f, **kwargs):
        Path(f).write_bytes(b"PK\x03\x04 half")
        raise OSError("simulated crash")

    torch.save = crash
    try:
        save_checkpoint(tiny_net(), path)
    except OSError:
        pass
    finally:
        torch.save = real
    ok = path.read_bytes() == good and sorted(p.name for p in tmp.iterdir()) == ["net.pt"]
    return Outcome(ok, "previous file intact" if ok else "damaged")


@case("predict's metrics.csv / summary.csv interrupted while writing", "previous tables intact")
def _tables(files, tmp):
    from monai_reg_ext.api.result import write_metric_tables

    write_metric_tables(tmp, [{"pair": "pair_000", "dice": 0.5}])
    before = _snapshot(tmp)

    class Crash:
        def __str__(self):
            raise RuntimeError("simulated crash")

    try:
        write_metric_tables(tmp, [{"pair": Crash(), "dice": 0.1}])
    except RuntimeError:
        pass
    return Outcome(_snapshot(tmp) == before, "previous tables intact" if _snapshot(tmp) == before else "damaged")


# --- other suites ---------------------------------------------------------------------------------------------------


def bad_input_cases(files: dict, root: Path) -> list[tuple[str, str, Outcome]]:
    """The 27 cases of ``tests/reliability/test_bad_inputs.py`` through the CLI."""
    from tests.reliability import test_bad_inputs as bad

    rows = []
    for name in bad.CASES:
        tmp = Path(tempfile.mkdtemp(dir=root))
        c = bad.build(name, files, tmp)
        before = bad._snapshot(c)
        code, err = run_cli(bad._argv(c, tmp))
        lines = [line for line in err.splitlines() if line.startswith("monai-reg: error:")]
        ok = code == 2 and len(lines) == 1 and bool(re.search(c.match, lines[0])) and bad._snapshot(c) == before
        rows.append(
            (name.replace("_", " "), "refused", Outcome(ok, f"exit {code}: `{_short(lines[0] if lines else err)}`"))
        )
    return rows


def archive_cases(root: Path) -> list[tuple[str, str, Outcome]]:
    """The download, archive and index cases of ``tests/reliability/test_archives.py`` (``hub.download``)."""
    from monai_reg_ext import hub
    from tests.reliability import test_archives as arc

    rows = []
    for c in arc.CASES.values():
        tmp = Path(tempfile.mkdtemp(dir=root))
        old = {k: os.environ.get(k) for k in c.env or {}}
        os.environ.update(c.env or {})
        try:
            hub.download(arc.NAME, bundle_dir=tmp / "b", **c.build(tmp))
            outcome = Outcome(False, "**installed**")
        except Exception as err:  # the refusal expected, or something else (reported)
            text = str(err).splitlines()[0] if str(err) else type(err).__name__
            ok = isinstance(err, c.error) and bool(re.search(c.match, str(err)))
            ok = ok and (not (tmp / "b").exists() or not any((tmp / "b").iterdir()))
            outcome = Outcome(ok, f"`{type(err).__name__}: {_short(text, 100)}`")
        finally:
            for k, v in old.items():
                if v is None:
                    os.environ.pop(k)
                else:
                    os.environ[k] = v
        rows.append((c.row, "refused, nothing installed", outcome))
    return rows


def main(argv: list[str] | None = None) -> int:
    import argparse

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--fuzz_examples", type=int, default=50, help="examples per fuzzed property (default 50)")
    parser.add_argument("--output", help="also write the table to this Markdown file")
    parser.add_argument("--skip", default="", help="comma-separated sections to skip: issue,bad_inputs,archives,fuzz")
    args = parser.parse_args(argv)
    skip = set(filter(None, args.skip.split(",")))
    torch.set_num_threads(1)
    warnings.filterwarnings("ignore")
    logging.disable(logging.WARNING)
    lines, totals = [], {"tried": 0, "handled": 0}
    with tempfile.TemporaryDirectory() as tmp_name:
        root = Path(tmp_name)
        files = make_files(root / "files")
        sections = []
        if "issue" not in skip:
            issue_rows = []
            for row, expected, fn in CASES:
                tmp = Path(tempfile.mkdtemp(dir=root))
                try:
                    outcome = fn(files, tmp)
                except Exception as err:  # a case that crashed is a case not handled
                    outcome = Outcome(False, f"crashed: `{type(err).__name__}: {_short(str(err))}`")
                issue_rows.append((row, expected, outcome))
            sections.append(("Rows of issue 20", issue_rows))
        if "bad_inputs" not in skip:
            sections.append(("Bad inputs (tests/reliability/test_bad_inputs.py)", bad_input_cases(files, root)))
        if "archives" not in skip:
            sections.append(("Downloads, archives, indexes (tests/reliability/test_archives.py)", archive_cases(root)))
        for title, rows in sections:
            handled = sum(o.handled for _, _, o in rows)
            totals["tried"] += len(rows)
            totals["handled"] += handled
            header = ["| # | case | expected | outcome | handled |", "|---|---|---|---|---|"]
            lines += [f"### {title}: {handled} of {len(rows)} handled", "", *header]
            lines += [f"| {i} | {r} | {e} | {o.text} | {'yes' if o.handled else '**no**'} |"
                      for i, (r, e, o) in enumerate(rows, 1)]  # fmt: skip
            lines.append("")
        fuzz = None
        if "fuzz" not in skip:
            from tests.reliability.test_fuzz import run_fuzz

            t0 = time.perf_counter()
            fuzz = run_fuzz(root / "fuzz", files["bundle"], args.fuzz_examples)
            fuzz["seconds"] = time.perf_counter() - t0
    summary = f"**{totals['handled']} of {totals['tried']} cases handled**"
    if fuzz is not None:
        summary += (
            f"; fuzzing (hypothesis, {args.fuzz_examples} examples per property, bundle-free register a quarter): "
            f"**{fuzz['examples']} examples, {fuzz['ok']} succeeded with the right geometry, {fuzz['user_error']} "
            f"refused with a user error naming the file, {len(fuzz['failures'])} properties failed** "
            f"({fuzz['seconds']:.0f} s)"
        )
        lines += [f"- fuzzing failure: {f}" for f in fuzz["failures"]]
    text = "\n".join([summary + ".", "", *lines])
    print(text)
    if args.output:
        Path(args.output).write_text(text + "\n")
    failed = totals["tried"] - totals["handled"] + (len(fuzz["failures"]) if fuzz else 0)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
