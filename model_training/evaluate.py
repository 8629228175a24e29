"""Evaluate a shipped recogniser on any labelled set and print JSON metrics.

    python -m model_training.evaluate face   --labels faces.csv   [--pre-cropped]
    python -m model_training.evaluate speech --labels clips.csv
    python -m model_training.evaluate text   --labels texts.csv

Image and audio CSVs have columns ``path,emotion`` (paths relative to the CSV); text CSVs
``text,emotion``. Each modality's evaluation lives in ``model_training/eval_<modality>.py``
and exposes ``add_arguments(parser)`` and ``evaluate(args) -> dict``.
"""

from __future__ import annotations

import argparse
import importlib
import json
import sys

MODALITIES = ("face", "speech", "text")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="modality", required=True)
    modules = {}
    for modality in MODALITIES:
        module = importlib.import_module(f"model_training.eval_{modality}")
        modules[modality] = module
        module.add_arguments(sub.add_parser(modality, help=f"evaluate the {modality} recogniser"))
    args = parser.parse_args(argv)
    result = modules[args.modality].evaluate(args)
    json.dump(result, sys.stdout, indent=2)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
