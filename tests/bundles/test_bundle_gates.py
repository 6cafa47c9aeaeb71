"""CI gates for every bundle in ``bundles/`` (each folder with configs/metadata.json).

Required files, MONAI metadata schema, ``verify_net_in_out``, TorchScript export (``ckpt_export``) matching eager,
safe weights, version recorded (bump + changelog when files change), file sizes, no absolute paths or user names in
configs, and a packaged zip that ``monai.bundle download`` accepts. See ``docs/distribution.md``.
"""

from __future__ import annotations

import getpass
import json
import re
import zipfile
from pathlib import Path

import pytest
import torch

from monai_reg_ext import hub
from tests.helpers import BUNDLES_DIR, parse_bundle_config, verify_bundle_metadata, verify_bundle_net_in_out

BUNDLES = sorted(p for p in BUNDLES_DIR.iterdir() if (p / "configs" / "metadata.json").is_file())
IDS = [b.name for b in BUNDLES]

REQUIRED = (
    "configs/metadata.json",
    "configs/train.json",
    "configs/inference.json",
    "configs/evaluate.json",
    "configs/multi_gpu_train.json",
    "configs/logging.conf",
    "docs/README.md",
    "models/model.pt",
    "LICENSE",
)
MAX_FILE_BYTES = 25 * 2**20
ABSOLUTE_PATH = re.compile(r"(?<![\w.])(/home/|/tmp/|/root/|/work/|/Users/|/mnt/|[A-Za-z]:\\\\?)")
GENERIC_USERS = {"root", "user", "admin", "runner", "ubuntu", "nobody", "jovyan"}

pytestmark = pytest.mark.skipif(not BUNDLES, reason="no bundle with configs/metadata.json in bundles/")


def _has_network(bundle: Path) -> bool:
    """Optimisation-based (classical) bundles have no network: their inference config defines no network_def."""
    config = json.loads((bundle / "configs" / "inference.json").read_text())
    return "network_def" in config or "backbone_def" in config


NETWORK_BUNDLES = [b for b in BUNDLES if (b / "configs" / "inference.json").is_file() and _has_network(b)]
NETWORK_IDS = [b.name for b in NETWORK_BUNDLES]


def _config_files(bundle: Path) -> list[Path]:
    return sorted(p for p in (bundle / "configs").iterdir() if p.is_file())


def _net_id(bundle: Path) -> str:
    """The tensor-output network of the inference config: ``backbone_def`` when present, else ``network_def``."""
    config = json.loads((bundle / "configs" / "inference.json").read_text())
    return "backbone_def" if "backbone_def" in config else "network_def"


def _input_shape(bundle: Path) -> list[int]:
    meta = json.loads((bundle / "configs" / "metadata.json").read_text())
    image = meta["network_data_format"]["inputs"]["image"]
    return [1, int(image["num_channels"]), *[int(s) for s in image["spatial_shape"]]]


def _backbone_state(bundle: Path, net: torch.nn.Module) -> dict:
    """models/model.pt for ``net``: the wrapper's state_dict has ``backbone.`` prefixes, the backbone's has none."""
    state = torch.load(bundle / "models" / "model.pt", map_location="cpu", weights_only=True)
    own = set(net.state_dict())
    if own <= set(state):
        return {k: state[k] for k in own}
    return {k[len("backbone.") :]: v for k, v in state.items() if k.startswith("backbone.")}


@pytest.mark.parametrize("bundle", BUNDLES, ids=IDS)
def test_required_files(bundle):
    missing = [f for f in REQUIRED if not (bundle / f).is_file()]
    assert not missing, f"{bundle.name}: missing required files {missing}"


@pytest.mark.parametrize("bundle", BUNDLES, ids=IDS)
def test_metadata_schema(bundle):
    verify_bundle_metadata(bundle)  # offline, against tests/data_files/monai_meta_schema_20240725.json


@pytest.mark.parametrize("bundle", BUNDLES, ids=IDS)
def test_network_or_declared_optimisation_based(bundle):
    """A bundle without a network must say so in its metadata (the network gates below do not apply to it)."""
    if bundle in NETWORK_BUNDLES:
        return
    meta = json.loads((bundle / "configs" / "metadata.json").read_text())
    assert "optimisation-based" in meta.get("task", ""), (
        f"{bundle.name}: inference.json defines no network_def, and metadata task does not say 'optimisation-based'"
    )


@pytest.mark.parametrize("bundle", NETWORK_BUNDLES, ids=NETWORK_IDS)
def test_verify_net_in_out(bundle):
    verify_bundle_net_in_out(bundle, _net_id(bundle))


@pytest.mark.parametrize("bundle", NETWORK_BUNDLES, ids=NETWORK_IDS)
def test_inference_resizes_images_as_training(bundle):
    """``register`` must low-pass the images before the network grid exactly when the training preprocessing did."""
    train = json.loads((bundle / "configs" / "train.json").read_text())
    pre = train.get("preprocessing")
    trained = pre.get("anti_aliasing", False) if isinstance(pre, dict) else False
    inferred = json.loads((bundle / "configs" / "inference.json").read_text()).get("anti_aliasing", False)
    assert trained == inferred, (
        f"{bundle.name}: train.json preprocessing anti_aliasing={trained} but inference.json anti_aliasing={inferred}"
    )


@pytest.mark.parametrize("bundle", BUNDLES, ids=IDS)
def test_weights_are_tensors_only(bundle):
    for pt in sorted((bundle / "models").glob("*.pt")):
        state = hub.check_weights(pt)  # torch.load(weights_only=True); tensors and plain values only
        assert any(isinstance(v, torch.Tensor) for v in state.values()), f"{pt}: holds no tensors"


@pytest.mark.parametrize("bundle", NETWORK_BUNDLES, ids=NETWORK_IDS)
def test_torchscript_export_matches_eager(bundle, tmp_path):
    from monai.bundle import ckpt_export

    net_id = _net_id(bundle)
    parser = parse_bundle_config(bundle, ["inference.json"], with_meta=True)
    eager = parser.get_parsed_content(net_id)
    ckpt = tmp_path / "backbone.pt"
    torch.save(_backbone_state(bundle, eager), ckpt)
    eager.load_state_dict(torch.load(ckpt, weights_only=True))
    exported = tmp_path / "model.ts"
    ckpt_export(
        net_id=net_id,
        filepath=str(exported),
        ckpt_file=str(ckpt),
        meta_file=str(bundle / "configs" / "metadata.json"),
        config_file=str(bundle / "configs" / "inference.json"),
        bundle_root=str(bundle),
    )
    ts = torch.jit.load(str(exported), map_location="cpu")
    x = torch.rand(_input_shape(bundle), generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        ref = eager.eval()(x)
        out = ts.eval()(x)
    assert out.shape == ref.shape
    assert float(ref.abs().max()) > 0, "the trained network predicts a zero field: were the weights loaded?"
    torch.testing.assert_close(out, ref, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("bundle", BUNDLES, ids=IDS)
def test_version_recorded_and_changelog(bundle):
    version, meta = hub.read_version(bundle)  # raises when the version has no changelog entry
    assert version in meta["changelog"]
    problems = [p for p in hub.check_versions(BUNDLES_DIR) if p.startswith(f"{bundle.name}:")]
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize("bundle", BUNDLES, ids=IDS)
def test_no_large_files(bundle):
    sizes = {rel.as_posix(): (bundle / rel).stat().st_size for rel in hub.bundle_files(bundle)}
    big = [f"{rel} ({n / 2**20:.1f} MB)" for rel, n in sizes.items() if n > MAX_FILE_BYTES]
    assert not big, f"{bundle.name}: files over 25 MB: {big} (use download_large_files / large_files.yml)"


@pytest.mark.parametrize("bundle", BUNDLES, ids=IDS)
def test_no_absolute_paths_or_user_names_in_configs(bundle):
    users = {getpass.getuser()} - GENERIC_USERS
    bad = []
    for f in _config_files(bundle):
        for i, line in enumerate(f.read_text().splitlines(), 1):
            if ABSOLUTE_PATH.search(line):
                bad.append(f"{f.name}:{i}: absolute path: {line.strip()[:100]}")
            for u in users:
                if len(u) >= 3 and re.search(rf"\b{re.escape(u)}\b", line):
                    bad.append(f"{f.name}:{i}: user name {u!r}: {line.strip()[:100]}")
    assert not bad, "\n".join(bad)


@pytest.fixture(scope="module")
def packaged(tmp_path_factory):
    out = tmp_path_factory.mktemp("release")
    zips = {b.name: hub.make_bundle_zip(b, out) for b in BUNDLES}
    index = hub.make_index(zips.values(), url_template=out.as_uri() + "/{name}_v{version}.zip")
    (out / "model_info.json").write_text(json.dumps(index))
    return out, zips


@pytest.mark.parametrize("bundle", BUNDLES, ids=IDS)
def test_packaged_zip_downloads(bundle, packaged, tmp_path):
    from monai.bundle import download

    out, zips = packaged
    z = zips[bundle.name]
    with zipfile.ZipFile(z) as zf:
        assert hub.check_zip(zf, bundle.name) == bundle.name
        names = {n.split("/", 1)[1] for n in zf.namelist()}
    expected = {p.as_posix() for p in hub.bundle_files(bundle)}
    assert names == expected and {"LICENSE", "models/model.pt", "configs/metadata.json"} <= names
    assert not any(n.startswith(("runs/", "eval/")) or "__pycache__" in n for n in names)
    ours = hub.download(bundle.name, index=str(out / "model_info.json"), bundle_dir=tmp_path / "hub")
    download(name=bundle.name, url=z.as_uri(), bundle_dir=str(tmp_path / "monai"), progress=False)
    theirs = tmp_path / "monai" / bundle.name
    for rel in expected:
        assert hub.sha256_file(ours / rel) == hub.sha256_file(bundle / rel) == hub.sha256_file(theirs / rel), rel
