"""``python -m nemesis_bkg.training``: the same as ``nemesis-bkg train``."""

import argparse
import sys

from .command import add_arguments, run

parser = argparse.ArgumentParser(prog="python -m nemesis_bkg.training",
                                 description="train or fine-tune the inpainting network")
add_arguments(parser)
sys.exit(run(parser.parse_args()))
