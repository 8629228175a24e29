"""Print the latency figures the README and model cards quote.

    python -m benchmarks.run                 # every modality whose model is bundled
    python -m benchmarks.run text --repeats 100 --json bench.json

Each ``benchmarks/bench_<modality>.py`` exposes ``run(repeats) -> dict`` with at least
``median_ms`` and ``p90_ms`` measured after warm-up. Speed is measured here, never asserted in
tests: figures depend on the machine, so print them with the machine's description.
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import platform
import sys
from pathlib import Path

BENCHMARKS = ("face", "speech", "text", "video")
REPO_ROOT = Path(__file__).resolve().parent.parent


def machine_description() -> str:
    return f"{platform.machine()}, {os.cpu_count()} logical CPUs, Python {platform.python_version()}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("only", nargs="*", metavar="MODALITY", help=f"any of {', '.join(BENCHMARKS)} (default: all)")
    parser.add_argument("--repeats", type=int, default=None, help="timed repetitions per benchmark")
    parser.add_argument("--json", type=Path, help="also write the results to this JSON file")
    args = parser.parse_args(argv)
    unknown = set(args.only) - set(BENCHMARKS)
    if unknown:
        parser.error(f"unknown benchmark(s): {', '.join(sorted(unknown))}")
    sys.path.insert(0, str(REPO_ROOT))

    results: dict[str, dict] = {}
    print(f"machine: {machine_description()}")
    for name in args.only or BENCHMARKS:
        if not (REPO_ROOT / "models" / name / "card.json").is_file():
            print(f"{name:>7}: skipped (no bundled {name} model)")
            continue
        module = importlib.import_module(f"benchmarks.bench_{name}")
        result = module.run(args.repeats) if args.repeats else module.run()
        results[name] = result
        extras = ", ".join(f"{k}={v}" for k, v in result.items() if k not in {"median_ms", "p90_ms"})
        print(f"{name:>7}: median {result['median_ms']:.1f} ms, p90 {result['p90_ms']:.1f} ms ({extras})")
    if args.json:
        args.json.write_text(json.dumps({"machine": machine_description(), "results": results}, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
