"""Instance-optimisation settings of a bundle: which loss and regulariser refine its network's DDF on a pair."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..bundle import BundleModel

__all__ = ["instance_optimisation_settings"]

_IO_KEYS = ("image_loss", "regulariser", "weight", "lr", "transform", "control_point_spacing", "levels")


def instance_optimisation_settings(model: BundleModel, io_kwargs: dict[str, Any] | None) -> dict[str, Any]:
    """Keyword arguments of :func:`monai_reg_ext.optimise.instance_optimise` for a bundle.

    Sources, first match wins for the loss: the inference config's ``instance_optimisation`` dict (keys among
    ``image_loss``, ``regulariser``, ``weight``, ``lr``, ``transform``, ``control_point_spacing``, ``levels``; losses
    as ``_target_`` components); else the image loss and regulariser of the bundle's ``configs/train.json`` ``loss``
    (a ``RegistrationLoss``; regulariser weight = ``weights.regulariser / weights.image``, the label term is
    dropped); else ``instance_optimise``'s defaults (LNCC with kernel 7 + 2 x bending energy, control points every 4
    voxels). ``io_kwargs`` (any ``instance_optimise`` argument) override all of these.
    """
    from monai.bundle import ConfigParser

    settings: dict[str, Any] = {}
    config = dict(model.config or {})
    if "instance_optimisation" in config:
        block = config["instance_optimisation"]
        unknown = set(block) - set(_IO_KEYS)
        if unknown:
            raise ValueError(
                f"inference config 'instance_optimisation': expected keys among {_IO_KEYS}, got {sorted(unknown)}."
            )
        parsed = ConfigParser(config).get_parsed_content("instance_optimisation", instantiate=True)
        settings = {("reg_weight" if k == "weight" else k): v for k, v in dict(parsed).items()}
    elif model.bundle_dir is not None and (Path(model.bundle_dir) / "configs" / "train.json").is_file():
        parser = ConfigParser()
        parser.read_config(str(Path(model.bundle_dir) / "configs" / "train.json"))
        parser["bundle_root"] = str(model.bundle_dir)
        if "loss" in parser and "image_loss" in parser["loss"]:
            settings["image_loss"] = parser.get_parsed_content("loss#image_loss", instantiate=True)
            reg = parser["loss"].get("regulariser")
            weights = parser.get_parsed_content("loss#weights") if "weights" in parser["loss"] else {}
            if isinstance(weights, dict):
                w_img, w_reg = float(weights.get("image", 1.0)), float(weights.get("regulariser", 1.0))
            else:
                w_img, w_reg = float(weights[0]), float(weights[2])
            if reg is None or w_reg == 0 or w_img <= 0:
                settings["reg_weight"] = 0.0
            else:
                settings["regulariser"] = parser.get_parsed_content("loss#regulariser", instantiate=True)
                settings["reg_weight"] = w_reg / w_img
    settings.update(io_kwargs or {})
    return settings
