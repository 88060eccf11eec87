"""Region-specific SageMaker image URIs, from the generated table.

``data/image_uris.json`` is produced by ``scripts/gen_image_uris.py`` from the SageMaker
SDK's image-URI data; nothing here is typed by hand. Templates carry the table as a
CloudFormation Mapping and pick their row with ``!FindInMap [.., !Ref AWS::Region, ..]``,
so one rendered template deploys to any region the table covers.
"""

from __future__ import annotations

import json
from functools import cache
from importlib.resources import files

from troposphere import FindInMap, Ref, Template

MAPPING_NAME = "SageMakerImages"


@cache
def table() -> dict[str, dict[str, str]]:
    """``{region: {"model-monitor": uri, "xgboost-<version>": uri}}``."""
    text = files("mlops_templates").joinpath("data/image_uris.json").read_text("utf-8")
    return json.loads(text)["regions"]


def xgboost_versions() -> list[str]:
    first = next(iter(table().values()))
    return sorted(k.removeprefix("xgboost-") for k in first if k.startswith("xgboost-"))


def image_uri(kind: str, region: str) -> str:
    """The URI of ``kind`` ("model-monitor", "xgboost-1.7-1") in ``region``."""
    try:
        return table()[region][kind]
    except KeyError:
        raise KeyError(f"no '{kind}' image known for region '{region}'") from None


def add_mapping(template: Template, images: dict[str, str]) -> None:
    """Add the region -> image Mapping to ``template``.

    ``images`` maps the Mapping attribute name (e.g. ``"ModelMonitor"``) to a table
    column (e.g. ``"model-monitor"``). Calling it twice merges the attributes.
    """
    existing = template.mappings.get(MAPPING_NAME, {})
    for region, row in table().items():
        entry = existing.setdefault(region, {})
        for attribute, column in images.items():
            entry[attribute] = row[column]
    if MAPPING_NAME not in template.mappings:
        template.add_mapping(MAPPING_NAME, existing)


def image(attribute: str) -> FindInMap:
    """The image for the stack's region, as an intrinsic."""
    return FindInMap(MAPPING_NAME, Ref("AWS::Region"), attribute)
