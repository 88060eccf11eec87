"""Safety: the region image table is what its generator derives from the SageMaker SDK.

Templates take the built-in XGBoost and Model Monitor image URIs from
``mlops_templates/data/image_uris.json``; a hand edit (a wrong account ID in one region)
would deploy someone else's image. The generator's ``--check`` mode regenerates the table
from the ``sagemaker`` SDK's image URI data and compares, byte for byte.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
VENV_PYTHON = REPO / ".venv" / "bin" / "python"


def test_region_image_table_matches_its_generator() -> None:
    python = VENV_PYTHON if VENV_PYTHON.exists() else Path(sys.executable)
    proc = subprocess.run(
        [str(python), str(REPO / "scripts" / "gen_image_uris.py"), "--check"],
        capture_output=True, text=True, cwd=REPO, timeout=300, check=False,
    )
    assert proc.returncode == 0, f"gen_image_uris.py --check failed:\n{proc.stdout}{proc.stderr}"
