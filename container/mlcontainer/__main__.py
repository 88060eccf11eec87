"""``mlcontainer <command>``: the dispatcher behind ``docker run IMAGE <command>``.

Each command's module is imported only when it runs: ``serve`` must fork its workers
before NumPy or XGBoost start threads.
"""

from __future__ import annotations

import importlib
import os
import sys

from mlcontainer import __version__

COMMANDS = {
    "preprocess": ("mlcontainer.preprocess", "validate the raw CSV and split it (processing job)"),
    "train": ("mlcontainer.train", "train XGBoost on the train/validation channels (training job)"),
    "evaluate": ("mlcontainer.evaluate", "score model.tar.gz on the test split (processing job)"),
    "serve": ("mlcontainer.server", "answer /ping and /invocations on port 8080 (hosting)"),
    "monitor": ("mlcontainer.monitor", "check captured traffic against the baseline (processing job)"),
}


def usage() -> str:
    lines = ["usage: mlcontainer <command> [options]", "", "commands:"]
    lines += [f"  {name:<11} {summary}" for name, (_, summary) in COMMANDS.items()]
    lines += ["", ("Paths default to /opt/ml (ML_PREFIX moves the root); "
                   "`mlcontainer <command> --help` for a command's options.")]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if not argv or argv[0] in ("-h", "--help", "help"):
        print(usage())
        return 0 if argv else 2
    if argv[0] == "--version":
        print(f"mlcontainer {__version__}")
        return 0
    command, rest = argv[0], argv[1:]
    if command not in COMMANDS:
        print(f"mlcontainer: unknown command {command!r}\n\n{usage()}", file=sys.stderr)
        return 2
    # OpenMP threads that spin while waiting starve everything else on a shared or busy
    # machine (seen: 60x slower boosting on 2 loaded cores); passive waiting costs little.
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    # XGBoost imports scikit-learn, when installed, for wrappers this package never uses
    # (seconds of start-up per job). The image has no scikit-learn; a development venv
    # may: behave like the image.
    sys.modules.setdefault("sklearn", None)  # type: ignore[arg-type]
    module = importlib.import_module(COMMANDS[command][0])
    return module.main(rest)


if __name__ == "__main__":
    sys.exit(main())
