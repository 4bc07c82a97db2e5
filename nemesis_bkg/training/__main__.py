"""``python -m nemesis_bkg.training``: the same as ``nemesis-bkg train``, exit status included."""

import sys

from ..cli import main

sys.exit(main(["train", *sys.argv[1:]]))
