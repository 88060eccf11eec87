#!/usr/bin/env python3
"""Regenerate mlops_templates/data/image_uris.json from the SageMaker SDK.

The table holds, for every region where both exist, the Model Monitor analyzer image
and the built-in XGBoost images of the versions listed below. Templates read it
(through ``mlops_templates.regions``) instead of typing account IDs by hand.

Usage: python scripts/gen_image_uris.py [--check]
"""

from __future__ import annotations

import argparse
import json
import sys
from importlib.metadata import version as dist_version
from pathlib import Path

TABLE = Path(__file__).resolve().parent.parent / "mlops_templates" / "data" / "image_uris.json"
XGBOOST_VERSIONS = ("1.7-1", "3.0-5")


def generate() -> str:
    from sagemaker.core import image_uris
    from sagemaker.core.image_uris import config_for_framework

    monitor_regions = set(config_for_framework("model-monitor")["versions"][""]["registries"])
    xgb = config_for_framework("xgboost")["training"]["versions"]
    regions = sorted(
        monitor_regions.intersection(*(xgb[v]["registries"] for v in XGBOOST_VERSIONS))
    )
    table: dict[str, dict[str, str]] = {}
    for region in regions:
        row = {"model-monitor": image_uris.retrieve("model-monitor", region)}
        for version in XGBOOST_VERSIONS:
            row[f"xgboost-{version}"] = image_uris.retrieve(
                "xgboost", region, version=version, image_scope="training"
            )
        table[region] = row
    doc = {
        "source": f"sagemaker-core {dist_version('sagemaker-core')} image_uris.retrieve",
        "regions": table,
    }
    return json.dumps(doc, indent=1, sort_keys=True) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="fail if the table is stale")
    args = parser.parse_args()
    text = generate()
    if args.check:
        if TABLE.read_text(encoding="utf-8") != text:
            print(f"{TABLE} is stale: run scripts/gen_image_uris.py", file=sys.stderr)
            return 1
        return 0
    TABLE.write_text(text, encoding="utf-8")
    print(f"wrote {TABLE}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
