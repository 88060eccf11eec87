"""What every batch job shares: reporting a failure the way SageMaker shows it."""

from __future__ import annotations

import sys
import time
import traceback
from collections.abc import Callable
from pathlib import Path

from mlcontainer.errors import UserError


def log(message: str) -> None:
    print(message, flush=True)


def _write_reason(path: Path, text: str) -> None:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    except OSError as err:
        # Unwritable /opt/ml/output (an unprivileged user on a root-owned mount): the
        # reason still reaches the log.
        print(f"cannot write {path}: {err}", file=sys.stderr, flush=True)


def run_job(name: str, body: Callable[[], None], reason_file: Path, *,
            reason_limit: int | None = None) -> int:
    """Run ``body``; on error write the reason where SageMaker reads it and return 1.

    A :class:`UserError` is reported by its message alone; anything else is an internal
    error and keeps its traceback (in the log and in the reason file).
    """
    started = time.perf_counter()
    try:
        body()
    except UserError as err:
        reason = f"{name} failed: {err}"
        print(reason, file=sys.stderr, flush=True)
        _write_reason(reason_file, reason[:reason_limit] if reason_limit else reason)
        return 1
    except Exception as err:  # noqa: BLE001 - every failure must reach SageMaker
        detail = traceback.format_exc()
        print(detail, file=sys.stderr, flush=True)
        reason = f"{name} failed with an internal error: {type(err).__name__}: {err}"
        text = reason if reason_limit else f"{reason}\n\n{detail}"
        _write_reason(reason_file, text[:reason_limit] if reason_limit else text)
        return 1
    log(f"{name} finished in {time.perf_counter() - started:.2f} s")
    return 0
