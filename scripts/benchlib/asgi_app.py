"""mlcontainer's ASGI application (:mod:`mlcontainer.asgi`) as a module-level object, for
servers that import their app by name (``granian --interface asgi benchlib.asgi_app:app``).

Configured as ``mlcontainer serve`` configures it: from the same environment variables,
with the model files read once per process. Run with ``PYTHONPATH=container:scripts``
and ``ML_PREFIX`` (or ``SM_MODEL_DIR``) pointing at the hosting root.
"""

from __future__ import annotations

from mlcontainer.asgi import App
from mlcontainer.model import read_model_files
from mlcontainer.server import ServerConfig

_cfg = ServerConfig.from_env()
app = App(_cfg, read_model_files(_cfg.model_dir))
