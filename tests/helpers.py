"""Generic helpers shared by tests: tiny bundles built in a temporary folder, and the checks and smoke runs that the
bundle test modules (``tests/bundles/test_*.py``) share: metadata / network I/O / weights checks, loading a bundle's
scripts, parsing its configs with overrides, copying a small part of its shipped data, and training / evaluating /
inferring through its real configs. Checks of one kind of bundle live beside their tests (the lung CT bundles':
``tests/bundles/lung_checks.py``)."""

from __future__ import annotations

import importlib.util
import json
import shutil
import sys
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from types import ModuleType
from typing import Any, NamedTuple

import torch

from monai_reg_ext.networks import RegistrationNet

REPO_ROOT = Path(__file__).resolve().parents[1]
BUNDLES_DIR = REPO_ROOT / "bundles"
#: MONAI's bundle metadata schema (the file ``monai.bundle verify_metadata`` downloads; Apache-2.0), kept in the
#: repository so the metadata gate runs offline (tests/data_files/README.md)
METADATA_SCHEMA = REPO_ROOT / "tests" / "data_files" / "monai_meta_schema_20240725.json"
#: the keys of an image pair with labels, as the bundles' pairs files and ``example/`` folders name them
PAIR_KEYS = ("moving", "fixed", "moving_label", "fixed_label")
#: the overrides that shorten a training run through a bundle's configs to one epoch on the CPU
SMOKE_TRAINING = {"max_epochs": 1, "val_interval": 1, "num_workers": 0, "batch_size": 1}
#: the overrides of the two-process (torch.distributed) training runs: two short epochs, validated after each
SMOKE_TWO_PROCESS_TRAINING = {"max_epochs": 2, "val_interval": 1, "batch_size": 1}


def make_tiny_bundle(root: Path, spatial_dims: int = 3, size: int = 16, random_output: bool = False) -> Path:
    """Write ``root/configs/inference.json`` and ``root/models/model.pt`` of a LocalNet (4 channels, levels 0-2).

    Args:
        root: the bundle folder to create.
        spatial_dims: 2 or 3.
        size: the network grid edge (``spatial_size = [size] * spatial_dims``).
        random_output: give the zero-initialised output layer random weights, so the DDF is not zero.
    """
    net_def = {
        "_target_": "monai_reg_ext.networks.RegistrationNet",
        "backbone": "localnet",
        "method": "ddf",
        "spatial_dims": spatial_dims,
        "backbone_kwargs": {"num_channel_initial": 4, "extract_levels": [0, 1, 2]},
    }
    (root / "configs").mkdir(parents=True)
    (root / "models").mkdir()
    config = {"spatial_size": [size] * spatial_dims, "network_def": net_def}
    (root / "configs" / "inference.json").write_text(json.dumps(config))
    torch.manual_seed(0)
    net = RegistrationNet(
        "localnet",
        "ddf",
        spatial_dims=spatial_dims,
        backbone_kwargs={"num_channel_initial": 4, "extract_levels": (0, 1, 2)},
    )
    if random_output:
        for p in net.parameters():
            if torch.count_nonzero(p) == 0:
                p.data.normal_(0, 0.05)
    torch.save(net.state_dict(), root / "models" / "model.pt")
    return root


def free_port() -> int:
    """A free TCP port on 127.0.0.1 (for torch.distributed's rendezvous in tests)."""
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def cli_overrides(**overrides: Any) -> list[str]:
    """``--key value`` arguments of ``python -m monai.bundle run`` (values as compact JSON: ``[16,16,16]``, ``2``);
    an override of ``None`` is left out."""
    args: list[str] = []
    for key, value in overrides.items():
        if value is not None:
            args += [f"--{key}", json.dumps(value, separators=(",", ":"))]
    return args


def run_two_process_training(
    bundle: Path, config_files: list[str], dataset_dir: Path, output_dir: Path, *extra: str, **overrides: Any
) -> None:
    """Train a bundle for a few iterations in 2 CPU processes (torchrun, gloo) through its multi-GPU config.

    ``config_files`` are the bundle's config names before ``multi_gpu_train.json`` (e.g. ``["train.json"]``);
    ``extra`` are further ``--key value`` arguments; ``overrides`` (grid size, epochs...) update
    :data:`SMOKE_TWO_PROCESS_TRAINING` (an override of ``None`` leaves that key to the config, see
    :func:`cli_overrides`). Asserts that the run succeeds and writes ``output_dir/model.pt``.
    """
    import os
    import subprocess

    configs = bundle / "configs"
    names = [*config_files, "multi_gpu_train.json"]
    config_arg = "[" + ",".join(f"'{configs / n}'" for n in names) + "]"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2", f"--master_port={free_port()}",
           "-m", "monai.bundle", "run", "training", "--config_file", config_arg,
           "--meta_file", str(configs / "metadata.json"), "--bundle_root", str(bundle),
           "--dataset_dir", str(dataset_dir), "--output_dir", str(output_dir),
           "--num_workers", "0", *extra, *cli_overrides(**{**SMOKE_TWO_PROCESS_TRAINING, **overrides})]  # fmt: skip
    env = {**os.environ, "OMP_NUM_THREADS": "1", "CUDA_VISIBLE_DEVICES": ""}
    res = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=600)
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
    assert (Path(output_dir) / "model.pt").is_file()


# ------------------------------------------------------------------------------------- train / evaluate / inference
def run_bundle_training(
    bundle: Path,
    dataset_dir: Path,
    output_dir: Path,
    config_files: Sequence[str] = ("train.json",),
    **overrides: Any,
) -> Path:
    """``monai.bundle.run("training")`` through the bundle's ``config_files`` (names in ``configs/``), its metadata
    and logging config, for one epoch (:data:`SMOKE_TRAINING`, then ``overrides``; an override of ``None`` leaves that
    key to the config). Asserts that ``output_dir/model.pt`` is written and holds a non-empty state dict.

    Returns the path of ``model.pt``.
    """
    from monai.bundle import run

    configs = bundle / "configs"
    settings = {k: v for k, v in {**SMOKE_TRAINING, **overrides}.items() if v is not None}
    run(
        "training",
        config_file=[str(configs / c) for c in config_files],
        meta_file=str(configs / "metadata.json"),
        logging_file=str(configs / "logging.conf"),
        bundle_root=str(bundle),
        dataset_dir=str(dataset_dir),
        output_dir=str(output_dir),
        **settings,
    )
    model_path = Path(output_dir) / "model.pt"
    assert model_path.is_file() and torch.load(model_path, weights_only=True)
    return model_path


def run_bundle_evaluation(
    bundle: Path,
    dataset_dir: Path,
    output_dir: Path,
    ckpt_path: Path,
    config_files: Sequence[str] = ("train.json", "evaluate.json"),
    **overrides: Any,
) -> str:
    """``monai.bundle.run("evaluating")`` of the checkpoint ``ckpt_path`` through ``config_files`` (names in
    ``configs/``) with ``overrides`` (grid size, split...).

    Returns the text of the metrics file it writes, ``output_dir/eval/metrics.csv``.
    """
    from monai.bundle import run

    configs = bundle / "configs"
    run(
        "evaluating",
        config_file=[str(configs / c) for c in config_files],
        meta_file=str(configs / "metadata.json"),
        bundle_root=str(bundle),
        dataset_dir=str(dataset_dir),
        output_dir=str(output_dir),
        ckpt_path=str(ckpt_path),
        **overrides,
    )
    return (Path(output_dir) / "eval" / "metrics.csv").read_text()


def run_bundle_inference(bundle: Path, output_dir: Path, pairs_file: Path | None = None) -> str:
    """``monai.bundle.run("inference")`` of the bundle's ``inference.json`` on the CPU, on ``pairs_file`` (the config's
    own pairs when ``None``). Asserts that the first pair's ``pair_000/ddf.nii.gz`` and ``summary.csv`` are written.

    Returns the text of ``output_dir/summary.csv``.
    """
    from monai.bundle import run

    pairs = {} if pairs_file is None else {"pairs_file": str(pairs_file)}
    run(
        "inference",
        config_file=str(bundle / "configs" / "inference.json"),
        bundle_root=str(bundle),
        output_dir=str(output_dir),
        device="$torch.device('cpu')",
        **pairs,
    )
    out = Path(output_dir)
    assert (out / "pair_000" / "ddf.nii.gz").is_file() and (out / "summary.csv").is_file()
    return (out / "summary.csv").read_text()


def run_train_evaluate_inference(
    bundle: Path,
    dataset_dir: Path,
    tmp_path: Path,
    train_configs: list[str] | None = None,
    spatial_size: list[int] | None = None,
    eval_metric: str = "val_mean_dice",
    summary_key: str = "dice_label0_after",
) -> Path:
    """One epoch of training through ``train_configs`` (default ``["train.json"]``), then the evaluating and the
    inference configs, on ``dataset_dir`` (``pairs.json`` for inference); asserts each step's output.

    Returns the trained ``model.pt``.
    """
    size = spatial_size or [16, 16, 16]
    runs = tmp_path / "runs"
    model_path = run_bundle_training(bundle, dataset_dir, runs, train_configs or ["train.json"], spatial_size=size)
    metrics = run_bundle_evaluation(bundle, dataset_dir, runs, model_path, spatial_size=size, eval_split="val")
    assert eval_metric in metrics
    summary = run_bundle_inference(bundle, tmp_path / "inference", dataset_dir / "pairs.json")
    assert summary_key in summary
    return model_path


class BundleSmoke(NamedTuple):
    """What :func:`run_bundle_smoke` ran: the trained ``model.pt``, the evaluation's metrics CSV text and the
    inference's ``summary.csv`` text."""

    model_path: Path
    metrics: str
    summary: str


def run_bundle_smoke(
    bundle: Path,
    dataset_dir: Path,
    tmp_path: Path,
    pairs_file: Path | None = None,
    train: Mapping[str, Any] | None = None,
    evaluate: Mapping[str, Any] | None = None,
) -> BundleSmoke:
    """:func:`run_bundle_training` (``train.json``, overrides ``train``) and :func:`run_bundle_evaluation` (overrides
    ``evaluate``) on ``dataset_dir`` into ``tmp_path/runs``, then :func:`run_bundle_inference` on ``pairs_file`` (the
    config's own pairs when None) into ``tmp_path/inference``; each asserts its own outputs."""
    runs = tmp_path / "runs"
    model_path = run_bundle_training(bundle, dataset_dir, runs, **(train or {}))
    metrics = run_bundle_evaluation(bundle, dataset_dir, runs, model_path, **(evaluate or {}))
    return BundleSmoke(model_path, metrics, run_bundle_inference(bundle, tmp_path / "inference", pairs_file))


def tiny_dataset_fixture(bundle: Path, **options: Any) -> Any:
    """A module-scoped pytest fixture (assign it to ``tiny_data`` in a test module): :func:`make_tiny_dataset` of
    the bundle's shipped ``data`` (``options`` as there: two training and two validation items, plus a pairs file of
    the example pair) in a temporary folder."""
    import pytest

    @pytest.fixture(scope="module")
    def tiny_data(tmp_path_factory: Any) -> Path:
        return make_tiny_dataset(bundle / "data", tmp_path_factory.mktemp(bundle.name), **options)

    return tiny_data


# ---------------------------------------------------------------------------------------- metadata, network, weights
def verify_bundle_metadata(bundle: Path) -> None:
    """``monai.bundle.verify_metadata`` of ``configs/metadata.json`` against :data:`METADATA_SCHEMA`, offline (the
    schema is in the repository: the gate never skips)."""
    from monai.bundle import verify_metadata

    assert METADATA_SCHEMA.is_file(), f"MONAI's metadata schema is missing from the repository: {METADATA_SCHEMA}"
    verify_metadata(meta_file=str(bundle / "configs" / "metadata.json"), filepath=str(METADATA_SCHEMA))


def verify_bundle_net_in_out(bundle: Path, net_id: str = "backbone_def") -> None:
    """``monai.bundle.verify_net_in_out`` of ``net_id`` in ``configs/inference.json`` against the metadata's
    input / output formats (``bundle_root`` set to ``bundle``)."""
    from monai.bundle import verify_net_in_out

    configs = bundle / "configs"
    verify_net_in_out(
        net_id=net_id,
        meta_file=str(configs / "metadata.json"),
        config_file=str(configs / "inference.json"),
        bundle_root=str(bundle),
    )


def check_shipped_weights(bundle: Path, spatial_size: tuple[int, ...], weights: str | Path = "model.pt") -> Any:
    """The shipped ``weights`` (a path relative to ``bundle/models``) load with ``torch.load(weights_only=True)`` as a
    non-empty dict of CPU tensors, and ``monai_reg_ext.bundle.load_bundle`` builds the network with them on the
    inference grid ``spatial_size``.

    Returns the loaded :class:`~monai_reg_ext.bundle.BundleModel`.
    """
    from monai_reg_ext.bundle import load_bundle

    path = bundle / "models" / weights
    state = torch.load(path, weights_only=True)
    assert state and all(isinstance(v, torch.Tensor) and v.device.type == "cpu" for v in state.values())
    model = load_bundle(bundle, weights=path)
    assert model.spatial_size == tuple(spatial_size)
    return model


# ------------------------------------------------------------------------------------------------- scripts, configs
def load_bundle_script(bundle: Path, name: str, scripts_on_path: bool = False) -> ModuleType:
    """Import ``bundle/scripts/<name>.py`` as the module ``_<bundle name>_<name>`` (registered in ``sys.modules``, so
    that its dataclasses and pickling work).

    Args:
        bundle: the bundle folder.
        name: the script's file name without ``.py``.
        scripts_on_path: put ``bundle/scripts`` on ``sys.path`` while it runs, for a script that imports a sibling.
    """
    scripts = bundle / "scripts"
    spec = importlib.util.spec_from_file_location(f"_{bundle.name}_{name}", scripts / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    if scripts_on_path:
        sys.path.insert(0, str(scripts))
    try:
        spec.loader.exec_module(module)
    finally:
        if scripts_on_path:
            sys.path.remove(str(scripts))
    return module


def parse_bundle_config(
    bundle: Path,
    config_files: Sequence[str] = ("train.json",),
    overrides: Mapping[str, Any] | None = None,
    with_meta: bool = False,
) -> Any:
    """A ``monai.bundle.ConfigParser`` of the bundle's ``config_files`` (names in ``configs/``, later ones override),
    with ``bundle_root`` set to ``bundle`` and then ``overrides`` (``#`` paths allowed) applied; ``with_meta`` also
    reads ``configs/metadata.json``."""
    from monai.bundle import ConfigParser

    configs = bundle / "configs"
    parser = ConfigParser()
    parser.read_config([str(configs / c) for c in config_files])
    if with_meta:
        parser.read_meta(str(configs / "metadata.json"))
    parser.update({"bundle_root": str(bundle), **(overrides or {})})
    return parser


# --------------------------------------------------------------------------------------------------------- data
def copy_shipped_splits(
    data: Path,
    root: Path,
    counts: Mapping[str, int],
    subdirs: Iterable[str] = ("images", "labels"),
    stem: str = "subject",
) -> Path:
    """Copy ``<stem>_000.nii.gz`` ... (``counts[split]`` files) of each split's ``subdirs`` of a bundle's shipped
    ``data`` folder to the same places under ``root``.

    Returns ``root``.
    """
    for split, n in counts.items():
        for sub in subdirs:
            (root / split / sub).mkdir(parents=True)
            for i in range(n):
                name = f"{stem}_{i:03d}.nii.gz"
                shutil.copy(data / split / sub / name, root / split / sub / name)
    return root


def make_tiny_dataset(
    data: Path,
    root: Path,
    counts: Mapping[str, int] | None = None,
    subdirs: Iterable[str] = ("images", "labels"),
    stem: str = "subject",
) -> Path:
    """A small data set for smoke runs: the first ``counts[split]`` files (default two training and two validation
    ones) of a bundle's shipped ``data`` (see :func:`copy_shipped_splits`), plus ``root/pairs.json`` of the pair in
    ``data/example`` (see :func:`write_example_pairs`).

    Returns ``root``.
    """
    copy_shipped_splits(data, root, counts or {"train": 2, "val": 2}, subdirs, stem)
    write_example_pairs(data / "example", root / "pairs.json")
    return root


def write_example_pairs(example: Path, pairs_file: Path, keys: Iterable[str] = PAIR_KEYS) -> Path:
    """Write a pairs file of the one pair in a bundle's ``example`` folder: ``{key: example/<key>.nii.gz}`` of
    ``keys``, as absolute paths.

    Returns ``pairs_file``.
    """
    pairs_file.write_text(json.dumps([{k: str(example / f"{k}.nii.gz") for k in keys}]))
    return pairs_file


def write_absolute_pairs(
    pairs: Iterable[Mapping[str, str]], base: Path, pairs_file: Path, keep: Iterable[str] = ("name",)
) -> Path:
    """Write ``pairs`` (paths relative to ``base``) to ``pairs_file`` as absolute paths; the values of ``keep`` (names,
    not paths) stay as they are.

    Returns ``pairs_file``.
    """
    kept = set(keep)
    absolute = [{k: v if k in kept else str(base / v) for k, v in p.items()} for p in pairs]
    pairs_file.write_text(json.dumps(absolute))
    return pairs_file
