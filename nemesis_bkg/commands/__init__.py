"""Subcommands of ``nemesis-bkg`` that drive the public classes (remove, demo)."""
