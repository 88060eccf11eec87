"""`make mutate`'s configuration stays true to the code (the run itself is not part of the suite).

tests/mutation/groups.toml names the files each safety area mutates and the tests that
guard them; tests/mutation/accepted.toml lists surviving mutants accepted with a reason.
A renamed file, test or function, or a changed line, would silently shrink what the
mutation run covers or keep an acceptance that no longer applies: these tests fail first.
scripts/mutate.py's own parsing of mutmut's names and diffs is checked here too.
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path
from types import ModuleType

import pytest

REPO = Path(__file__).resolve().parent.parent
GROUPS = REPO / "tests" / "mutation" / "groups.toml"
ACCEPTED = REPO / "tests" / "mutation" / "accepted.toml"


def _load_script() -> ModuleType:
    spec = importlib.util.spec_from_file_location("mlops_mutate_script", REPO / "scripts" / "mutate.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses resolve annotations through sys.modules
    spec.loader.exec_module(module)
    return module


mutate = _load_script()
GROUP_SPECS = tomllib.loads(GROUPS.read_text())
ACCEPTED_ENTRIES = tomllib.loads(ACCEPTED.read_text()).get("accepted", [])


@pytest.mark.parametrize("name", sorted(GROUP_SPECS))
def test_every_group_mutates_existing_files_with_existing_tests(name: str) -> None:
    spec = GROUP_SPECS[name]
    assert spec["title"].strip(), f"group {name}: a title says what safety area it is"
    for pattern in spec["mutate"]:
        assert sorted(REPO.glob(pattern)), f"group {name}: {pattern} matches no file"
    for test in spec["tests"]:
        assert (REPO / test).is_file(), f"group {name}: test file {test} does not exist"
    for package in spec.get("relocate", []):
        assert (REPO / package / "__init__.py").is_file(), f"group {name}: {package} is not a package"
    if spec.get("skip_functions") or spec.get("skip_lines"):
        assert spec.get("skip_reason", "").strip(), f"group {name}: skipped code needs a reason"


def test_the_safety_areas_of_the_issue_are_all_covered() -> None:
    """Config validation, the workflow definition, the deploy-prd guardrails and alarms, the
    permissions table, the Lambdas' error paths, the server's 4xx paths and the privilege
    drop: each file must be mutated by some group."""
    mutated = {str(p.relative_to(REPO)) for spec in GROUP_SPECS.values()
               for pattern in spec["mutate"] for p in REPO.glob(pattern)}
    for required in (
        "mlops_templates/config.py",
        "mlops_templates/stacks/workflow/definition.py",
        "mlops_templates/stacks/deploy_prd/serving.py",
        "mlops_templates/permissions/scopes.py",
        "lambdas/api/app.py",
        "lambdas/pre_traffic_hook/app.py",
        "lambdas/post_traffic_hook/app.py",
        "container/mlcontainer/asgi.py",
        "container/mlcontainer/privileges.py",
    ):
        assert required in mutated, f"{required} is in no group of {GROUPS.name}"


@pytest.mark.parametrize("index", range(len(ACCEPTED_ENTRIES)))
def test_every_accepted_survivor_still_names_real_code(index: int) -> None:
    entry = ACCEPTED_ENTRIES[index]
    assert entry["reason"].strip() and "hard to test" not in entry["reason"].lower()
    path = REPO / entry["file"]
    assert path.is_file(), f"accepted survivor in a missing file: {entry['file']}"
    source = mutate.function_source(path, entry["function"])
    assert source is not None, f"{entry['file']} has no function {entry['function']}"
    normalised = mutate._norm(source)
    for line in entry["before"].splitlines():
        assert mutate._norm(line) in normalised, (
            f"{entry['file']} {entry['function']}: the accepted mutant's line {line!r} is gone"
        )


def test_function_names_are_read_from_mutmut_keys() -> None:
    assert mutate.function_name("lambdas.api.app.x_handler__mutmut_12") == "handler"
    assert mutate.function_name("mlcontainer.asgi.xǁAppǁ__call____mutmut_3") == "App.__call__"
    assert mutate.function_name("m.x__private__mutmut_1") == "_private"


def test_a_mutant_diff_splits_into_its_removed_and_added_lines() -> None:
    diff = "--- a/f.py\n+++ b/f.py\n@@ -1 +1 @@\n-    return a + b\n+    return a - b\n"
    assert mutate.split_diff(diff) == ("return a + b", "return a - b")


def test_the_score_leaves_out_accepted_mutants_and_counts_timeouts_as_detected() -> None:
    row = mutate.Row("m.py", mutants=10, killed=6, justified=2, unjustified=1, timeouts=1)
    assert row.score == pytest.approx(7 / 8)
    assert mutate.Row("empty.py").score == 1.0


def test_tabulate_sorts_each_verdict_into_its_column() -> None:
    accepted = mutate.Accepted("m.py", "f", "a", "b", "equivalent")
    mutants = [
        mutate.Mutant("m.py", "f", "k1", "killed"),
        mutate.Mutant("m.py", "f", "k2", "timeout"),
        mutate.Mutant("m.py", "f", "k3", "survived", accepted=accepted),
        mutate.Mutant("m.py", "f", "k4", "survived"),
        mutate.Mutant("m.py", "f", "k5", "no tests"),
    ]
    (row,) = mutate.tabulate(mutants, ["m.py"])
    assert (row.mutants, row.killed, row.timeouts, row.justified, row.unjustified) == (5, 1, 1, 1, 2)


def test_an_acceptance_matches_its_mutant_whitespace_insensitively_and_nothing_else() -> None:
    entry = mutate.Accepted("m.py", "f", "x  =  1", "x = 2", "reason")
    same = mutate.Mutant("m.py", "f", "k", "survived", before="x = 1", after="x   = 2")
    assert entry.matches(same)
    for other in (
        mutate.Mutant("n.py", "f", "k", "survived", before="x = 1", after="x = 2"),
        mutate.Mutant("m.py", "g", "k", "survived", before="x = 1", after="x = 2"),
        mutate.Mutant("m.py", "f", "k", "survived", before="x = 1", after="x = 3"),
    ):
        assert not entry.matches(other)


def test_relocated_packages_map_both_ways() -> None:
    group = mutate.Group(name="g", title="t", mutate=("container/mlcontainer/asgi.py",),
                         tests=(), relocate=("container/mlcontainer",))
    assert group.session_path("container/mlcontainer/asgi.py") == "src/mlcontainer/asgi.py"
    assert group.repo_path("src/mlcontainer/asgi.py") == "container/mlcontainer/asgi.py"
    assert group.session_path("lambdas/api/app.py") == "lambdas/api/app.py"


def test_the_fork_server_preloads_only_libraries_and_starts_no_thread() -> None:
    # Mutants' processes are forked from the server after these imports: a project module
    # among them would run its original code (and fill its caches) before any mutant is
    # active, a thread alive at fork time (a native pool) can hang the child, and a pytest
    # plugin imported early makes pytest warn (an error under the project's settings).

    probe = (
        "import importlib, os, sys\n"
        f"for name in {list(mutate.PRELOAD)!r}:\n"
        "    importlib.import_module(name)\n"
        "own = sorted(m for m in sys.modules if m.split('.')[0] in {'mlops_templates', 'mlcontainer', 'app', 'tests'})\n"
        "print(len(os.listdir('/proc/self/task')), own)\n"
        "import pytest\n"
        "sys.exit(pytest.main(['-q', '-p', 'no:cacheprovider', '--hypothesis-seed=0',\n"
        "                      'tests/test_mutation.py::test_function_names_are_read_from_mutmut_keys']))\n"
    )
    out = subprocess.run([sys.executable, "-c", probe], check=False, cwd=REPO, capture_output=True, text=True)
    assert out.stdout.splitlines()[0] == "1 []"
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-2000:]


def test_a_mutation_session_shortens_the_servers_readiness_wait(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # A mutant that breaks the server's start-up must fail its tests in seconds: the
    # lifecycle tests' default wait for /ping is 60 s, the session's is 15 s.

    from .test_container_lifecycle import local

    assert mutate.session_env(tmp_path)["MLOPS_READY_TIMEOUT"] == "15"
    monkeypatch.setenv("MLOPS_READY_TIMEOUT", "0.5")
    server = object.__new__(local.Server)  # a "server" that is alive and never answers
    server.port, server.log_path = local.free_port(), tmp_path / "serve.log"
    server.log_path.write_text("starting\n")
    server.proc = subprocess.Popen(["sleep", "30"])
    try:
        with pytest.raises(RuntimeError, match=r"did not answer /ping within 0\.5 s:\nstarting"):
            server.wait_ready()
    finally:
        server.proc.kill()
        server.proc.wait()


def _collected(tmp_path: Path, order: str, ids: list[str], stats: dict | None = None) -> list[str]:
    """The node ids a mutant's run would execute, in order: pytest with the session's plugin,
    run where mutmut runs it (the session folder, which holds mutmut-stats.json)."""

    hooks = tmp_path / "hooks"
    hooks.mkdir(parents=True)
    shutil.copy2(REPO / "tests" / "mutation" / "hooks" / "mlops_mutate_plugin.py", hooks)
    (hooks / mutate.TEST_ORDER).write_text(order)
    if stats is not None:
        (tmp_path / "mutmut-stats.json").write_text(json.dumps(stats))
    out = subprocess.run(
        [sys.executable, "-m", "pytest", "--collect-only", "-q", "-p", "no:cacheprovider",
         "--rootdir", str(REPO), "-c", str(REPO / "setup.cfg"), "-p", "mlops_mutate_plugin",
         *(str(REPO / i) for i in ids)],
        cwd=tmp_path, env={**os.environ, "PYTHONPATH": str(hooks)}, capture_output=True, text=True, check=False)
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-2000:]
    return [line for line in out.stdout.splitlines() if "::" in line]


def test_a_mutants_tests_run_in_the_groups_order_of_files(tmp_path: Path) -> None:
    # mutmut passes a mutant's tests as a set (any order); the session's plugin runs them
    # file by file in the group's order, so the in-process tests come before the servers.
    ids = ["tests/test_codebase.py", "tests/test_mutation.py::test_relocated_packages_map_both_ways",
           "tests/test_mutation.py::test_function_names_are_read_from_mutmut_keys"]
    collected = _collected(tmp_path, "tests/test_mutation.py\ntests/test_codebase.py\n", ids)
    files = [line.split("::")[0] for line in collected]
    assert files[:2] == ["tests/test_mutation.py"] * 2
    assert set(files[2:]) == {"tests/test_codebase.py"}
    assert [line for line in collected if "test_mutation.py" in line] == ids[1:]


def test_within_a_file_the_tests_run_fastest_first_by_the_stats_runs_durations(tmp_path: Path) -> None:
    # A file's slow tests (the variants' cfn-lint runs) go last, so a mutant a quick test
    # kills never waits for them; a test the stats run did not time goes after the timed.
    names = ["test_function_names_are_read_from_mutmut_keys", "test_relocated_packages_map_both_ways",
             "test_a_mutant_diff_splits_into_its_removed_and_added_lines"]
    ids = [f"tests/test_mutation.py::{name}" for name in names]
    stats = {"duration_by_test": {ids[0]: 2.5, ids[1]: 0.25, "tests/test_codebase.py::x": 0.0}}
    collected = _collected(tmp_path, "tests/test_mutation.py\n", ids, stats)
    assert collected == [ids[1], ids[0], ids[2]]
    # Without the stats (before mutmut's stats run), pytest's own order stands.
    assert _collected(tmp_path / "none", "tests/test_mutation.py\n", ids) == ids
