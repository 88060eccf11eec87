"""The AWS CLI as the Makefile tests run it: ``python -m tests.moto_aws <aws arguments>``.

It runs the real AWS CLI of this venv. After ``cloudformation package`` it rewrites the
packaged template into what moto can create: the edits of ``test_stacks_moto`` (see
its docstring), and without ``Custom::`` resources, whose functions moto can only run in
Docker. Every other command passes through unchanged.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from cfn_flip import to_json

from tests.test_stacks_moto import moto_compatible


def moto_template(text: str) -> str:
    template = json.loads(to_json(text))
    template["Resources"] = {
        key: value for key, value in template["Resources"].items() if not value["Type"].startswith("Custom::")
    }
    return json.dumps(moto_compatible(template), indent=1, sort_keys=True)


def main(argv: list[str]) -> int:
    aws = Path(sys.executable).parent / "aws"
    code = subprocess.run([str(aws), *argv], check=False).returncode
    if code == 0 and argv[:2] == ["cloudformation", "package"]:
        out = Path(argv[argv.index("--output-template-file") + 1])
        out.write_text(moto_template(out.read_text(encoding="utf-8")), encoding="utf-8")
    return code


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
