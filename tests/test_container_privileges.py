"""The container's privilege drop, step by step (``mlcontainer.privileges``).

The end-to-end tests (tests/test_container_lifecycle.py) run the server as ``nobody``,
which needs a Python that ``nobody`` can read; a Python installed in root's 0700 home
cannot be, and there they skip. These tests check each step on its own, so the drop is
tested wherever the suite runs: who the target user is, the order of the identity calls,
the real readability check (a forked child that becomes ``nobody``, as root only), what a
job hands over before it drops and when it stays root, and the server's refusal.
"""

from __future__ import annotations

import os
import pwd
import shutil
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "container"))

from mlcontainer import privileges
from mlcontainer.errors import UserError

NEEDS_ROOT = pytest.mark.skipif(os.geteuid() != 0, reason="switching users needs root")


def _user(home: str = "/nonexistent", uid: int = 65534, gid: int = 65534) -> pwd.struct_passwd:
    return pwd.struct_passwd(("nobody", "x", uid, gid, "", home, "/usr/sbin/nologin"))


@pytest.fixture
def calls(monkeypatch: pytest.MonkeyPatch) -> list[tuple]:
    """The identity calls ``_switch`` makes, recorded instead of made."""
    made: list[tuple] = []
    monkeypatch.setattr(os, "setgroups", lambda groups: made.append(("setgroups", groups)))
    monkeypatch.setattr(os, "setgid", lambda gid: made.append(("setgid", gid)))
    monkeypatch.setattr(os, "setuid", lambda uid: made.append(("setuid", uid)))
    monkeypatch.setenv("HOME", "/root")
    return made


# ------------------------------------------------------------------------------ the target


def test_no_user_configured_means_no_drop(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(privileges.USER_ENV, raising=False)
    monkeypatch.setattr(os, "geteuid", lambda: 0)
    assert privileges._target() is None
    monkeypatch.setenv(privileges.USER_ENV, "")
    assert privileges._target() is None


def test_a_process_that_is_not_root_does_not_drop(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(privileges.USER_ENV, "nobody")
    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    assert privileges._target() is None


def test_root_drops_to_the_configured_user(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(privileges.USER_ENV, "nobody")
    monkeypatch.setattr(os, "geteuid", lambda: 0)
    target = privileges._target()
    assert target is not None and target.pw_name == "nobody" and target.pw_uid == pwd.getpwnam("nobody").pw_uid


def test_an_unknown_user_keeps_root_and_says_so(monkeypatch: pytest.MonkeyPatch,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv(privileges.USER_ENV, "no-such-user-here")
    monkeypatch.setattr(os, "geteuid", lambda: 0)
    assert privileges._target() is None
    assert capsys.readouterr().err == "MLCONTAINER_USER=no-such-user-here: no such user; running as root\n"


# ------------------------------------------------------------------------------ the switch


def test_the_switch_clears_groups_then_sets_the_group_then_the_user(calls: list[tuple]) -> None:
    """setuid first would leave no right to change the group: the order is the point."""
    privileges._switch(_user(uid=4321, gid=8765))
    assert calls == [("setgroups", []), ("setgid", 8765), ("setuid", 4321)]


def test_the_switch_points_home_at_the_users_home_or_tmp(calls: list[tuple], tmp_path: Path) -> None:
    privileges._switch(_user(home=str(tmp_path)))
    assert os.environ["HOME"] == str(tmp_path)
    privileges._switch(_user(home=str(tmp_path / "missing")))
    assert os.environ["HOME"] == "/tmp"


def test_runtime_dirs_are_the_packages_and_the_standard_library() -> None:
    dirs = privileges._runtime_dirs(("mlcontainer", "no_such_package_anywhere"))
    assert dirs == [Path(privileges.__file__).parent, Path(os.__file__).parent]
    assert privileges._runtime_dirs(()) == [Path(os.__file__).parent]


# ------------------------------------------------------------------ the readability check


@pytest.fixture
def open_dir() -> Iterator[Path]:
    """A directory every user can enter (pytest's own temporary root is 0700)."""
    path = Path(tempfile.mkdtemp(prefix="mlops-privileges-"))
    path.chmod(0o755)
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
def readable_tree(open_dir: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A tree ``nobody`` can read, checked without the interpreter's own directories (a
    Python in root's home is not readable by ``nobody``: see the module docstring)."""
    monkeypatch.setattr(privileges, "_runtime_dirs", lambda packages=(): [])
    tree = open_dir / "tree"
    (tree / "sub").mkdir(parents=True)
    (tree / "sub" / "data.csv").write_text("1,2\n")
    (tree / "top.txt").write_text("x")
    for path in (tree, tree / "sub"):
        path.chmod(0o755)
    for path in (tree / "sub" / "data.csv", tree / "top.txt"):
        path.chmod(0o644)
    return tree


@NEEDS_ROOT
def test_a_readable_tree_passes_the_check(readable_tree: Path) -> None:
    assert privileges._unreadable_as(pwd.getpwnam("nobody"), [readable_tree]) is None
    # A path that does not exist (an optional input) is not a problem.
    assert privileges._unreadable_as(pwd.getpwnam("nobody"), [readable_tree / "absent", readable_tree]) is None


@NEEDS_ROOT
def test_an_unreadable_file_deep_in_the_tree_is_named(readable_tree: Path) -> None:
    secret = readable_tree / "sub" / "data.csv"
    secret.chmod(0o600)
    assert privileges._unreadable_as(pwd.getpwnam("nobody"), [readable_tree]) == str(secret)


@NEEDS_ROOT
def test_a_directory_that_cannot_be_entered_is_named(readable_tree: Path) -> None:
    """Readable but not searchable (no x bit): listing works, opening files does not."""
    (readable_tree / "sub").chmod(0o744)
    assert privileges._unreadable_as(pwd.getpwnam("nobody"), [readable_tree]) == str(readable_tree / "sub")


@NEEDS_ROOT
def test_a_single_unreadable_file_given_as_the_input_is_named(readable_tree: Path) -> None:
    secret = readable_tree / "top.txt"
    secret.chmod(0o600)
    assert privileges._unreadable_as(pwd.getpwnam("nobody"), [secret]) == str(secret)


@NEEDS_ROOT
def test_unreadable_code_is_named_before_any_input(readable_tree: Path, open_dir: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    code = open_dir / "code"
    code.mkdir(mode=0o700)
    (readable_tree / "top.txt").chmod(0o600)
    monkeypatch.setattr(privileges, "_runtime_dirs", lambda packages=(): [readable_tree, code])
    assert privileges._unreadable_as(pwd.getpwnam("nobody"), [readable_tree]) == str(code)


@NEEDS_ROOT
def test_the_check_runs_in_a_child_and_leaves_this_process_root(readable_tree: Path) -> None:
    privileges._unreadable_as(pwd.getpwnam("nobody"), [readable_tree])
    assert (os.getuid(), os.geteuid(), os.getgid()) == (0, 0, 0)


@pytest.fixture
def access(monkeypatch: pytest.MonkeyPatch) -> dict[str, object]:
    """``os.access`` answered from ``denied`` (paths) and recorded with the mode asked."""
    state: dict[str, object] = {"denied": set(), "asked": []}

    def fake(path, mode):
        state["asked"].append((Path(path), mode))
        return Path(path) not in state["denied"]

    monkeypatch.setattr(os, "access", fake)
    return state


def test_code_directories_need_read_and_search(access: dict, tmp_path: Path) -> None:
    code, other = tmp_path / "code", tmp_path / "other"
    access["denied"] = {other}
    assert privileges._first_unreadable([code, other], []) == str(other)
    assert access["asked"] == [(code, os.R_OK | os.X_OK), (other, os.R_OK | os.X_OK)]


def test_every_path_of_an_input_tree_is_asked_with_the_right_mode(access: dict, tmp_path: Path) -> None:
    tree = tmp_path / "tree"
    (tree / "sub").mkdir(parents=True)
    (tree / "sub" / "a.csv").write_text("1")
    single = tmp_path / "single.csv"
    single.write_text("2")
    assert privileges._first_unreadable([], [tmp_path / "absent", tree, single]) == ""
    assert sorted(access["asked"]) == sorted([
        (tree, os.R_OK | os.X_OK), (tree / "sub", os.R_OK | os.X_OK),
        (tree / "sub" / "a.csv", os.R_OK), (single, os.R_OK)])


def test_the_first_unreadable_input_is_named_after_a_missing_one(access: dict, tmp_path: Path) -> None:
    tree = tmp_path / "tree"
    tree.mkdir()
    (tree / "a.csv").write_text("1")
    later = tmp_path / "later.csv"
    later.write_text("3")
    access["denied"] = {tree / "a.csv", later}
    assert privileges._first_unreadable([], [tmp_path / "absent", tree, later]) == str(tree / "a.csv")


def test_code_is_checked_before_inputs(access: dict, tmp_path: Path) -> None:
    access["denied"] = {tmp_path / "code", tmp_path}
    assert privileges._first_unreadable([tmp_path / "code"], [tmp_path]) == str(tmp_path / "code")
    assert len(access["asked"]) == 1


@pytest.mark.parametrize(("error", "expected"), [
    (PermissionError(13, "Permission denied", "/opt/ml/input"), "/opt/ml/input (Permission denied)"),
    (PermissionError(1, "Operation not permitted"), "a path (Operation not permitted)"),
    (RuntimeError("boom"), "the check as nobody failed: RuntimeError('boom')"),
])
def test_a_failure_in_the_child_is_reported_not_raised(monkeypatch: pytest.MonkeyPatch, error: BaseException,
                                                       expected: str) -> None:
    """Whatever fails in the forked child comes back as the problem; nothing escapes into
    a second copy of the caller."""
    monkeypatch.setattr(privileges, "_switch", lambda user: None)

    def fail(runtime, paths):
        raise error

    monkeypatch.setattr(privileges, "_first_unreadable", fail)
    assert privileges._unreadable_as(_user(), [], ()) == expected


def test_a_child_that_dies_without_an_answer_is_a_problem(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(privileges, "_switch", lambda user: os._exit(7))
    assert privileges._unreadable_as(_user(), [], ()) == "the check as nobody ended with status 7"


def test_the_child_is_given_the_runtime_of_the_packages_and_the_inputs(monkeypatch: pytest.MonkeyPatch,
                                                                      tmp_path: Path) -> None:
    """What the child checks, sent back through the pipe."""
    monkeypatch.setattr(privileges, "_switch", lambda user: None)
    monkeypatch.setattr(privileges, "_first_unreadable", lambda runtime, paths: repr(
        ([str(p) for p in runtime], [str(p) for p in paths])))
    answer = privileges._unreadable_as(_user(), iter([tmp_path]), ("mlcontainer",))
    assert answer == repr(([str(Path(privileges.__file__).parent), str(Path(os.__file__).parent)],
                           [str(tmp_path)]))


# ------------------------------------------------------------------------------- batch jobs


@pytest.fixture
def job(monkeypatch: pytest.MonkeyPatch) -> dict[str, list]:
    """``drop_for_job`` with a target user, its checks and identity calls recorded."""
    seen: dict[str, list] = {"checked": [], "chown": [], "switch": []}
    monkeypatch.setattr(privileges, "_target", lambda: _user(uid=4321, gid=8765))

    def unreadable(user: pwd.struct_passwd, paths: list[Path], packages=privileges.JOB_PACKAGES):
        seen["checked"].append((user.pw_name, list(paths), tuple(packages)))
        return seen.get("problem", [None])[0]

    monkeypatch.setattr(privileges, "_unreadable_as", unreadable)
    monkeypatch.setattr(os, "chown", lambda path, uid, gid, follow_symlinks=True: seen["chown"].append(
        (Path(path), uid, gid, follow_symlinks)))
    monkeypatch.setattr(privileges, "_switch", lambda user: seen["switch"].append(user.pw_uid))
    return seen


def test_a_job_hands_its_outputs_to_the_user_then_drops(job: dict[str, list], tmp_path: Path) -> None:
    inputs = tmp_path / "input"
    existing = tmp_path / "out-a"
    (existing / "nested").mkdir(parents=True)
    (existing / "nested" / "old.json").write_text("{}")
    created = tmp_path / "out-b" / "deep"
    privileges.drop_for_job([inputs], [existing, created])
    assert job["checked"] == [("nobody", [inputs], privileges.JOB_PACKAGES)]
    assert created.is_dir(), "a missing output directory is made before it is handed over"
    handed = {path for path, *_ in job["chown"]}
    assert handed == {existing, existing / "nested", existing / "nested" / "old.json", created}
    assert {(uid, gid, follow) for _, uid, gid, follow in job["chown"]} == {(4321, 8765, False)}
    assert job["switch"] == [4321]


def test_a_job_whose_input_the_user_cannot_read_stays_root(job: dict[str, list], tmp_path: Path,
                                                           capsys: pytest.CaptureFixture[str]) -> None:
    job["problem"] = ["/opt/ml/input/data/train/secret.csv"]
    privileges.drop_for_job([tmp_path], [tmp_path / "out"])
    assert job["chown"] == [] and job["switch"] == []
    assert not (tmp_path / "out").exists(), "nothing is handed over when the job stays root"
    assert capsys.readouterr().err == "staying root: nobody cannot read /opt/ml/input/data/train/secret.csv\n"


def test_a_job_that_cannot_hand_over_an_output_stays_root(job: dict[str, list], tmp_path: Path,
                                                          monkeypatch: pytest.MonkeyPatch,
                                                          capsys: pytest.CaptureFixture[str]) -> None:
    def refuse(path, uid, gid, follow_symlinks=True):
        raise PermissionError(1, "Operation not permitted", str(path))

    monkeypatch.setattr(os, "chown", refuse)
    privileges.drop_for_job([], [tmp_path / "out"])
    assert job["switch"] == []
    assert capsys.readouterr().err == (
        f"staying root: cannot hand {tmp_path / 'out'} to nobody (Operation not permitted)\n")


def test_without_a_target_a_job_touches_nothing(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setattr(privileges, "_target", lambda: None)
    monkeypatch.setattr(privileges, "_unreadable_as", lambda *a, **k: pytest.fail("checked without a user"))
    monkeypatch.setattr(privileges, "_switch", lambda user: pytest.fail("switched without a user"))
    privileges.drop_for_job([tmp_path], [tmp_path / "out"])
    assert not (tmp_path / "out").exists()


# ---------------------------------------------------------------------------------- server


def test_the_server_check_names_the_path_and_the_user(monkeypatch: pytest.MonkeyPatch) -> None:
    seen = []
    monkeypatch.setattr(privileges, "_target", lambda: _user())
    monkeypatch.setattr(privileges, "_unreadable_as",
                        lambda user, paths, packages: seen.append((list(paths), packages)) or "/home/me/code")
    with pytest.raises(UserError) as info:
        privileges.check_server()
    assert seen == [([], privileges.SERVER_PACKAGES)]
    assert str(info.value) == (
        "MLCONTAINER_USER=nobody: user nobody cannot read /home/me/code, which the server's "
        "workers run after they drop root; make it readable by nobody (e.g. not under a 0700 "
        "home directory) or unset MLCONTAINER_USER")


def test_the_server_check_passes_when_the_code_is_readable_or_no_user_is_set(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(privileges, "_target", lambda: _user())
    monkeypatch.setattr(privileges, "_unreadable_as", lambda user, paths, packages: None)
    privileges.check_server()
    monkeypatch.setattr(privileges, "_target", lambda: None)
    monkeypatch.setattr(privileges, "_unreadable_as", lambda *a: pytest.fail("checked without a user"))
    privileges.check_server()


def test_the_server_packages_cover_what_a_worker_runs() -> None:
    """A worker imports nothing after the drop (test_container_lifecycle checks that), but
    what it runs must be readable: the server stack and the model libraries."""
    assert {"mlcontainer", "numpy", "xgboost", "gunicorn", "uvicorn", "uvloop", "httptools"} <= set(
        privileges.SERVER_PACKAGES)
    assert {"mlcontainer", "numpy", "xgboost"} <= set(privileges.JOB_PACKAGES)


def test_a_worker_drops_only_with_a_target(monkeypatch: pytest.MonkeyPatch) -> None:
    switched = []
    monkeypatch.setattr(privileges, "_switch", lambda user: switched.append(user.pw_name))
    monkeypatch.setattr(privileges, "_target", lambda: None)
    privileges.drop_for_server()
    assert switched == []
    monkeypatch.setattr(privileges, "_target", lambda: _user())
    privileges.drop_for_server()
    assert switched == ["nobody"]
