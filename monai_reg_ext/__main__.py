"""``python -m monai_reg_ext`` = the ``monai-reg`` command line."""

from __future__ import annotations

import sys

from .cli import main

main(sys.argv[1:])
