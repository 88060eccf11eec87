"""The config variants the tests render, in one place with one loader.

A variant is a config file: ``example`` is ``mlops.yaml``; ``tests/configs/<name>.yaml``
are the configs with committed renderings (``tests/golden/``); ``tests/configs/variants/
<name>.yaml`` are the others, each with a comment saying what it varies. Every test that
runs over "all variants" takes them from :func:`names`.
"""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path
from typing import Any

from mlops_templates import config, render
from mlops_templates.stacks import pipeline

from .conftest import EXAMPLE_CONFIG, REPO

CONFIGS = REPO / "tests" / "configs"
VARIANTS = CONFIGS / "variants"
EXAMPLE = "example"
#: Subnets of the variants placed in existing subnets.
SUBNETS = ["subnet-0123456789abcdef0", "subnet-0fedcba9876543210"]


def path(name: str) -> Path:
    """The file of variant ``name``."""
    if name == EXAMPLE:
        return EXAMPLE_CONFIG
    for folder in (CONFIGS, VARIANTS):
        candidate = folder / f"{name}.yaml"
        if candidate.is_file():
            return candidate
    raise KeyError(f"no config variant '{name}' (known: {', '.join(names())})")


def names(golden: bool = True) -> list[str]:
    """Every variant: the example, the golden configs (unless ``golden`` is False) and
    the variants folder."""
    found = [EXAMPLE]
    if golden:
        found += sorted(p.stem for p in CONFIGS.glob("*.yaml"))
    return found + sorted(p.stem for p in VARIANTS.glob("*.yaml"))


def paths() -> list[Path]:
    return [path(name) for name in names()]


@cache
def variant_config(name: str) -> config.Config:
    return config.load(path(name))


@cache
def rendered(name: str, stack: str = "pipeline") -> str:
    return render.render(variant_config(name), [stack])[f"{stack}.yaml"]


@cache
def template(name: str) -> dict[str, Any]:
    return json.loads(pipeline.build(variant_config(name)).to_json())
