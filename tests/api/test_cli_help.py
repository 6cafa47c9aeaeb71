"""``monai-reg --help``: complete text for every argument of every command, and no torch / MONAI import (issue 19,
item 8)."""

from __future__ import annotations

import inspect
import json
import re
import subprocess
import sys

import pytest
from fire import docstrings

from monai_reg_ext import cli

ARG_LINE = re.compile(r"^(\w+): (.*)$")


def documented_args(func) -> dict[str, str]:
    """``{name: full description}`` of the Google-style ``Args:`` section of ``func``'s docstring, continuation lines
    joined (the reference fire's rendering is compared with)."""
    lines = inspect.getdoc(func).splitlines()
    start = lines.index("Args:") + 1
    args: dict[str, str] = {}
    name = None
    for line in lines[start:]:
        if not line.strip() or not line.startswith("    "):
            break
        match = ARG_LINE.match(line[4:]) if not line.startswith("     ") else None
        if match:
            name = match.group(1)
            args[name] = match.group(2)
        else:
            args[name] += " " + line.strip()
    return args


def squash(text: str) -> str:
    return " ".join(text.split())


@pytest.mark.parametrize("command", sorted(cli.COMMANDS))
def test_every_argument_is_documented_and_fire_reads_it_whole(command):
    """Each parameter has an Args entry, and python-fire's parser (what ``--help`` prints) reads each entry whole: a
    continuation line holding ``word (x: y`` used to be read as a new argument, cutting the help mid-sentence."""
    func = cli.COMMANDS[command]
    params = [p for p in inspect.signature(func).parameters]
    ours = documented_args(func)
    assert list(ours) == params, f"{command}: Args entries {list(ours)} vs parameters {params}"
    theirs = {a.name: squash(a.description or "") for a in docstrings.parse(func.__doc__).args}
    assert set(theirs) == set(params), f"{command}: fire reads arguments {sorted(theirs)}"
    for name, text in ours.items():
        assert theirs[name] == squash(text), f"{command} --{name}: fire shows {theirs[name]!r}"


HELP_SCRIPT = """
import json, sys
from monai_reg_ext.cli import COMMANDS, main
out = {}
for command in ["", *COMMANDS]:
    try:
        main([command, "--help"] if command else ["--help"])
    except SystemExit:
        pass
heavy = sorted(m for m in ("torch", "monai", "itk", "nibabel", "ignite", "SimpleITK") if m in sys.modules)
print("MODULES=" + json.dumps(heavy))
"""


def test_help_of_every_command_without_torch():
    """``--help`` of the tool and of each command prints complete text and imports neither torch nor MONAI."""
    res = subprocess.run([sys.executable, "-c", HELP_SCRIPT], capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr[-2000:]
    text = res.stdout + res.stderr
    modules = json.loads(text.split("MODULES=")[1].splitlines()[0])
    assert modules == [], f"--help imported {modules}"
    help_text = squash(text)
    for command in cli.COMMANDS:
        assert f"monai-reg {command}" in help_text
    # the entries python-fire used to cut mid-sentence
    assert "image loss and regulariser (0 = none; see docs/optimisation.md)." in help_text
    assert "training run's best_model.pt); default BUNDLE/models/model.pt." in help_text
    assert "refines the network's DDF on the native grid." in help_text
