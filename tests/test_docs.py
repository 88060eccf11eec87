"""The README is the front door: its generated parts are current and its commands exist."""

from __future__ import annotations

import json
import re

from mlops_templates import config, docs

from .conftest import REPO

README = REPO / "README.md"


def test_config_reference_in_readme_is_current() -> None:
    assert not docs.update_readme(README, check=True), "README config reference is stale: run `make templates`"


def test_config_reference_lists_every_setting() -> None:
    text = docs.config_reference()
    for row in docs.rows():
        assert f"| `{row.path}` |" in text
    assert "`endpoints.prd.deployment.type` | `canary` \\| `linear` \\| `all_at_once`" in text


def test_every_documented_default_is_the_real_default() -> None:
    defaults = config.parse(None).model_dump(mode="json")
    for row in docs.rows():
        value = defaults
        for part in row.path.split("."):
            value = value[part]
        assert row.default == ("none" if value is None else f"`{json.dumps(value)}`")


def test_make_targets_in_readme_exist() -> None:
    makefile = (REPO / "Makefile").read_text(encoding="utf-8")
    targets = set(re.findall(r"^([a-z][a-z-]*):", makefile, re.MULTILINE))
    for target in set(re.findall(r"`make ([a-z-]+)", README.read_text(encoding="utf-8"))):
        assert target in targets, f"README mentions `make {target}` but the Makefile lacks it"


def test_ci_runs_the_readme_test_command() -> None:
    ci = (REPO / ".ci" / "run").read_text(encoding="utf-8")
    assert "make test" in README.read_text(encoding="utf-8")
    assert re.search(r"^make test$", ci, re.MULTILINE)


def test_every_setting_is_described() -> None:
    undocumented = [row.path for row in docs.rows() if not row.description]
    assert undocumented == [], "add a `#:` comment above these fields in config.py"
