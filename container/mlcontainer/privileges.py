"""Run as the image's unprivileged user where SageMaker allows it.

SageMaker starts containers as root and mounts ``/opt/ml`` volumes owned by root, so an
image whose ``USER`` is unprivileged cannot write its outputs there. The image therefore
starts as root and each entry point drops to ``$MLCONTAINER_USER`` itself:

* ``serve``: each worker loads the model and imports all it needs, then drops, before
  it accepts a connection: the processes that parse requests never run as root. The
  master, which only forks and watches them, keeps root to restart them. Before it
  starts any worker it checks, as the user, that the code is readable (a checkout in a
  0700 home is not); if not, the server does not start and says which path and user.
  The model need not be: the master reads it, as root, before forking.
* batch jobs hand their output directories to the user and drop, but only after checking,
  as that user, that every input is readable; if one is not (a volume mounted 0700), the
  job stays root and says why, instead of failing.

Nothing happens when ``MLCONTAINER_USER`` is unset (local runs, tests) or the process is
not root. Stdlib only, and called before NumPy starts any thread.
"""

from __future__ import annotations

import importlib.util
import os
import pwd
import sys
from collections.abc import Iterable
from pathlib import Path

from mlcontainer.errors import UserError

USER_ENV = "MLCONTAINER_USER"
#: Packages whose code runs after the drop, besides the standard library.
JOB_PACKAGES = ("mlcontainer", "numpy", "scipy", "xgboost")
SERVER_PACKAGES = (
    "mlcontainer", "numpy", "xgboost", "gunicorn", "uvicorn", "uvicorn_worker", "uvloop", "httptools",
)


def _target() -> pwd.struct_passwd | None:
    name = os.environ.get(USER_ENV)
    if not name or os.geteuid() != 0:
        return None
    try:
        return pwd.getpwnam(name)
    except KeyError:
        print(f"{USER_ENV}={name}: no such user; running as root", file=sys.stderr)
        return None


def _switch(user: pwd.struct_passwd) -> None:
    os.setgroups([])
    os.setgid(user.pw_gid)
    os.setuid(user.pw_uid)
    os.environ["HOME"] = user.pw_dir if os.path.isdir(user.pw_dir) else "/tmp"


def _runtime_dirs(packages: Iterable[str] = JOB_PACKAGES) -> list[Path]:
    """Directories a process imports from after dropping: the packages it uses (found,
    not imported) and the standard library (a Python installed in root's home is not
    readable by others)."""
    dirs = []
    for name in packages:
        spec = importlib.util.find_spec(name)
        if spec is not None and spec.origin:
            dirs.append(Path(spec.origin).parent)
    dirs.append(Path(os.__file__).parent)
    return dirs


def _first_unreadable(runtime: Iterable[Path], paths: Iterable[Path]) -> str:
    """The first of ``runtime`` (directories to import from) and ``paths`` (inputs, each a
    file or a tree; a missing one is skipped) this process cannot read, or ``""``."""
    for directory in runtime:
        if not os.access(directory, os.R_OK | os.X_OK):
            return str(directory)
    for root in paths:
        if not root.exists():
            continue
        for path in [root, *root.rglob("*")] if root.is_dir() else [root]:
            if not os.access(path, os.R_OK | (os.X_OK if path.is_dir() else 0)):
                return str(path)
    return ""


def _unreadable_as(user: pwd.struct_passwd, paths: Iterable[Path],
                   packages: Iterable[str] = JOB_PACKAGES) -> str | None:
    """The first path ``user`` could not read (checked in a child that switched to it).

    The child always ends in ``os._exit``, whatever goes wrong in it: an exception that
    escaped would return into the caller's code in a second process. The parent trusts a
    silent child only if it exited normally."""
    runtime = _runtime_dirs(packages)
    paths = list(paths)
    read_fd, write_fd = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - child
        os.close(read_fd)
        try:
            _switch(user)
            problem = _first_unreadable(runtime, paths)
        except OSError as err:
            problem = f"{err.filename or 'a path'} ({err.strerror})"
        except BaseException as err:  # noqa: BLE001 - reported by the parent, never raised here
            problem = f"the check as {user.pw_name} failed: {err!r}"
        os.write(write_fd, problem.encode())
        os._exit(0)
    os.close(write_fd)
    with os.fdopen(read_fd, "rb") as pipe:
        problem = pipe.read().decode()
    _, status = os.waitpid(pid, 0)
    if not problem and os.waitstatus_to_exitcode(status) != 0:
        problem = f"the check as {user.pw_name} ended with status {os.waitstatus_to_exitcode(status)}"
    return problem or None


def drop_for_job(readable: Iterable[Path], writable: Iterable[Path]) -> None:
    """Become ``$MLCONTAINER_USER`` if it can read ``readable`` once given ``writable``."""
    user = _target()
    if user is None:
        return
    problem = _unreadable_as(user, list(readable))
    if problem:
        print(f"staying root: {user.pw_name} cannot read {problem}", file=sys.stderr)
        return
    try:
        for directory in writable:
            directory.mkdir(parents=True, exist_ok=True)
            for path in [directory, *directory.rglob("*")]:
                os.chown(path, user.pw_uid, user.pw_gid, follow_symlinks=False)
    except OSError as err:
        print(f"staying root: cannot hand {err.filename} to {user.pw_name} ({err.strerror})",
              file=sys.stderr)
        return
    _switch(user)


def check_server() -> None:
    """Raise :class:`UserError` unless ``$MLCONTAINER_USER`` can read the code the server's
    workers run once they drop root. Run by the master, before it forks any worker."""
    user = _target()
    if user is None:
        return
    problem = _unreadable_as(user, [], SERVER_PACKAGES)
    if problem:
        raise UserError(f"{USER_ENV}={user.pw_name}: user {user.pw_name} cannot read {problem}, "
                        "which the server's workers run after they drop root; make it readable "
                        f"by {user.pw_name} (e.g. not under a 0700 home directory) or unset "
                        f"{USER_ENV}")


def drop_for_server() -> None:
    """Become ``$MLCONTAINER_USER`` (a server worker, once its model is loaded)."""
    user = _target()
    if user is not None:
        _switch(user)
