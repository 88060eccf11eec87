#!/usr/bin/env python3
"""Export the container's hyperparameter rules to mlops_templates/data/container_hyperparameters.json.

The container (``container/mlcontainer/train.py``, ``HYPERPARAMETERS``) is the one place
the rules are written; the library is installed without the container's code, so it reads
this export to check ``training.tuning`` ranges at config time. The suite runs ``--check``,
so a rule changed in the container without a new export fails a test.

Usage: python scripts/gen_hyperparameter_rules.py [--check]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TARGET = ROOT / "mlops_templates" / "data" / "container_hyperparameters.json"
ABOUT = (
    "The project container's hyperparameter rules (container/mlcontainer/train.py, "
    "HYPERPARAMETERS), exported by scripts/gen_hyperparameter_rules.py: config validation "
    "checks training.tuning ranges against them."
)


def render() -> str:
    sys.path.insert(0, str(ROOT / "container"))
    from mlcontainer import train

    return json.dumps({"_about": ABOUT, "hyperparameters": train.rules()}, indent=1) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="fail if the file is stale")
    args = parser.parse_args(argv)
    text = render()
    if args.check:
        if TARGET.read_text(encoding="utf-8") != text:
            print(f"{TARGET.relative_to(ROOT)} is stale: run python scripts/gen_hyperparameter_rules.py")
            return 1
        return 0
    TARGET.write_text(text, encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
