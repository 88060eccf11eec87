#!/usr/bin/env python3
"""Mutation testing of the safety-critical code: ``make mutate`` runs this.

Each group of ``tests/mutation/groups.toml`` (a safety area: the files to mutate and the
fast, targeted tests that guard them) runs as one mutmut session in a temporary copy of
the working tree (the tracked files and the untracked ones git does not ignore, as they
are now): nothing is written into the repository. Surviving mutants are matched against
``tests/mutation/accepted.toml``, the survivors accepted with a reason (an equivalent
mutant, a log message's text); the others are reported with their diff, and the run fails.

Two things make mutmut's names match the code's (mutmut names a function by its file's
dotted path and records which tests call it by the function's ``__module__``):

- the Lambda tests load ``lambdas/<name>/app.py`` as module ``lambdas.<name>.app``
  (tests/lambda_helpers.py), the file's own dotted path;
- the container's package is imported as ``mlcontainer`` (``container/`` on the path, as
  in the image), so a group that mutates it moves the package to ``src/mlcontainer`` in the
  session's copy (mutmut drops a leading ``src.``) and leaves a symbolic link at
  ``container/mlcontainer``: the tests and the processes they start import the mutated
  files from where they always do.

The container's servers and batch jobs run in child processes. A ``sitecustomize`` put on
the session's ``PYTHONPATH`` reports the functions those processes call while mutmut
collects which tests cover which function, so the mutants of code that runs only in a
server process are tested too (the child processes inherit the active mutant).

Usage: python scripts/mutate.py [--group NAME ...] [--jobs N] [--keep] [--list]
"""

from __future__ import annotations

import argparse
import ast
import fnmatch
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import tomllib
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
MUTATION = ROOT / "tests" / "mutation"
GROUPS = MUTATION / "groups.toml"
ACCEPTED = MUTATION / "accepted.toml"
#: Where a group's relocated packages go in its session copy (mutmut strips ``src.``).
SRC = "src"

# mutmut's verdicts (mutmut.stats.status_by_exit_code) by the column they count in.
KILLED = {"killed"}
TIMEOUTS = {"timeout", "segfault"}
SURVIVED = {"survived", "no tests"}

#: Copied to the session's ``.mutate-hooks`` (its PYTHONPATH): the ``sitecustomize`` that
#: reports what child processes call, and the pytest plugin that credits it to the tests.
HOOKS = MUTATION / "hooks"
#: The group's test files in its order, one per line, in the session's ``.mutate-hooks``.
TEST_ORDER = "test-order.txt"
#: Libraries the fork server imports once, before it forks the mutants' processes: the
#: tests' pure-Python dependencies (about 1.5 s of imports a process would repeat).
#: Never the project's own modules (they must be imported with the mutant active), nor
#: native libraries that start threads (numpy, xgboost: a fork after that can hang), nor
#: pytest plugins (hypothesis, anyio: pytest warns it cannot rewrite them, and the
#: project's pytest settings make warnings errors).
PRELOAD = (
    "pytest", "pydantic", "yaml", "jinja2", "jsonschema",
    "botocore.session", "boto3", "moto", "troposphere", "awacs.aws",
    "samtranslator.translator.transform", "cfnlint.api",
)



@dataclass(frozen=True)
class Group:
    name: str
    title: str
    mutate: tuple[str, ...]
    tests: tuple[str, ...]
    relocate: tuple[str, ...] = ()
    #: Functions not mutated (``file:function`` globs), with ``skip_reason``.
    skip_functions: tuple[str, ...] = ()
    #: Lines not mutated (regular expressions, mutmut's ``do_not_mutate_patterns``).
    skip_lines: tuple[str, ...] = ()
    skip_reason: str = ""

    def skipped(self, file: str, function: str) -> bool:
        return any(fnmatch.fnmatchcase(f"{file}:{function}", pattern) for pattern in self.skip_functions)

    def mutant_globs(self) -> list[str]:
        """mutmut's names of the mutants to run: every function's but the skipped ones'."""
        if not self.skip_functions:
            return []
        names = []
        for path in self.mutate:
            module = self.session_path(path).removesuffix(".py").replace("/", ".").removeprefix(f"{SRC}.")
            module = module.removesuffix(".__init__")
            for function in functions_of(ROOT / path):
                if not self.skipped(path, function):
                    cls, _, name = function.rpartition(".")
                    mangled = f"xǁ{cls}ǁ{name}" if cls else f"x_{name}"
                    names.append(f"{module}.{mangled}__mutmut_*")
        return names

    def session_path(self, path: str) -> str:
        """``path`` (repository-relative) as it lies in the session copy."""
        for package in self.relocate:
            if path == package or path.startswith(package + "/"):
                return f"{SRC}/{Path(package).name}{path[len(package):]}"
        return path

    def repo_path(self, path: str) -> str:
        """The inverse of :meth:`session_path`."""
        for package in self.relocate:
            moved = f"{SRC}/{Path(package).name}"
            if path == moved or path.startswith(moved + "/"):
                return package + path[len(moved):]
        return path


@dataclass(frozen=True)
class Accepted:
    file: str
    function: str
    before: str
    after: str
    reason: str

    def matches(self, mutant: Mutant) -> bool:
        return (self.file == mutant.file and self.function == mutant.function
                and _norm(self.before) == _norm(mutant.before)
                and _norm(self.after) == _norm(mutant.after))


@dataclass
class Mutant:
    file: str
    function: str
    key: str
    status: str
    before: str = ""
    after: str = ""
    diff: str = ""
    accepted: Accepted | None = None


@dataclass
class Row:
    """A module's figures."""

    module: str
    mutants: int = 0
    killed: int = 0
    justified: int = 0
    unjustified: int = 0
    timeouts: int = 0
    other: Counter = field(default_factory=Counter)

    @property
    def score(self) -> float:
        """The share of the mutants that are not accepted as equivalent that the tests
        detect (killed or timed out)."""
        relevant = self.mutants - self.justified
        return 1.0 if relevant <= 0 else (self.killed + self.timeouts) / relevant


def _norm(text: str) -> str:
    return "\n".join(" ".join(line.split()) for line in text.strip().splitlines())


def load_groups(path: Path = GROUPS) -> dict[str, Group]:
    data = tomllib.loads(path.read_text())

    def files(patterns: list[str]) -> tuple[str, ...]:
        found = [str(p.relative_to(ROOT)) for pattern in patterns for p in sorted(ROOT.glob(pattern))
                 if p.stat().st_size]
        return tuple(dict.fromkeys(found))

    return {name: Group(name=name, title=spec["title"], mutate=files(spec["mutate"]),
                        tests=tuple(spec["tests"]), relocate=tuple(spec.get("relocate", ())),
                        skip_functions=tuple(spec.get("skip_functions", ())),
                        skip_lines=tuple(spec.get("skip_lines", ())),
                        skip_reason=spec.get("skip_reason", ""))
            for name, spec in data.items()}


def load_accepted(path: Path = ACCEPTED) -> list[Accepted]:
    data = tomllib.loads(path.read_text())
    return [Accepted(file=e["file"], function=e["function"], before=e["before"],
                     after=e["after"], reason=e["reason"]) for e in data.get("accepted", [])]


def function_name(key: str) -> str:
    """``lambdas.api.app.xǁClsǁmeth__mutmut_3`` -> ``Cls.meth``; ``….x_fn__mutmut_1`` -> ``fn``."""
    mangled = key.partition("__mutmut_")[0].rpartition(".")[2]
    if mangled.startswith("xǁ"):
        _, cls, meth = mangled.split("ǁ")
        return f"{cls}.{meth}"
    return mangled.removeprefix("x_")


def split_diff(diff: str) -> tuple[str, str]:
    """The removed and the added lines of a mutant's unified diff."""
    before, after = [], []
    for line in diff.splitlines():
        if line.startswith(("---", "+++")):
            continue
        if line.startswith("-"):
            before.append(line[1:].strip())
        elif line.startswith("+"):
            after.append(line[1:].strip())
    return "\n".join(before), "\n".join(after)


def functions_of(file: Path) -> list[str]:
    """The functions of ``file`` mutmut mutates: ``name`` and ``Class.name``."""
    tree = ast.parse(file.read_text())
    found = []
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            found.append(node.name)
        elif isinstance(node, ast.ClassDef):
            found += [f"{node.name}.{item.name}" for item in node.body
                      if isinstance(item, (ast.FunctionDef, ast.AsyncFunctionDef))]
    return found


def function_source(file: Path, function: str) -> str | None:
    """The source of ``function`` (``name`` or ``Class.name``) in ``file``, or None."""
    tree = ast.parse(file.read_text())
    scopes: list[tuple[list[ast.stmt], str]] = [(tree.body, "")]
    while scopes:
        body, prefix = scopes.pop()
        for node in body:
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and prefix + node.name == function:
                return ast.get_source_segment(file.read_text(), node)
            if isinstance(node, ast.ClassDef) and not prefix:
                scopes.append((node.body, node.name + "."))
    return None


def tabulate(mutants: list[Mutant], modules: list[str]) -> list[Row]:
    rows = {module: Row(module) for module in modules}
    for mutant in mutants:
        row = rows.setdefault(mutant.file, Row(mutant.file))
        row.mutants += 1
        if mutant.status in KILLED:
            row.killed += 1
        elif mutant.status in TIMEOUTS:
            row.timeouts += 1
        elif mutant.accepted is not None:
            row.justified += 1
        else:
            row.unjustified += 1
            if mutant.status not in SURVIVED:
                row.other[mutant.status] += 1
    return list(rows.values())


def format_table(rows: list[Row], title: str = "") -> str:
    header = ("module", "mutants", "killed", "justified", "unjustified", "timeouts", "score")
    lines = [header] + [
        (r.module, str(r.mutants), str(r.killed), str(r.justified), str(r.unjustified),
         str(r.timeouts), f"{r.score:.1%}") for r in rows]
    total = Row("total")
    for r in rows:
        total.mutants += r.mutants
        total.killed += r.killed
        total.justified += r.justified
        total.unjustified += r.unjustified
        total.timeouts += r.timeouts
    lines.append(("total", str(total.mutants), str(total.killed), str(total.justified),
                  str(total.unjustified), str(total.timeouts), f"{total.score:.1%}"))
    widths = [max(len(line[i]) for line in lines) for i in range(len(header))]
    out = [title] if title else []
    for n, line in enumerate(lines):
        out.append("  ".join(cell.ljust(widths[0]) if i == 0 else cell.rjust(widths[i])
                             for i, cell in enumerate(line)))
        if n == 0 or n == len(lines) - 2:
            out.append("  ".join("-" * w for w in widths))
    return "\n".join(out)


# --- the session ---------------------------------------------------------------------------


def working_tree_files() -> list[str]:
    out = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
                         cwd=ROOT, check=True, capture_output=True).stdout.decode()
    return [path for path in out.split("\0") if path and (ROOT / path).is_file()]


def prepare(group: Group, dest: Path) -> None:
    """Copy the working tree to ``dest`` and configure mutmut there for ``group``."""
    for path in working_tree_files():
        target = dest / path
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(ROOT / path, target)
    (dest / "mutants").mkdir()
    for package in group.relocate:
        moved = dest / group.session_path(package)
        moved.parent.mkdir(parents=True, exist_ok=True)
        (dest / package).rename(moved)
        link = os.path.relpath(moved, (dest / package).parent)
        (dest / package).symlink_to(link, target_is_directory=True)
        # The same link in mutmut's copy: the tests import the mutated files through it.
        (dest / "mutants" / package).parent.mkdir(parents=True, exist_ok=True)
        (dest / "mutants" / package).symlink_to(link, target_is_directory=True)
    sources = sorted({group.session_path(path).split("/")[0] for path in group.mutate})
    also_copy = sorted(entry.name for entry in dest.iterdir()
                       if entry.name not in {"mutants", *sources})
    pyproject = dest / "pyproject.toml"
    if "mutmut" in tomllib.loads(pyproject.read_text()).get("tool", {}):
        raise SystemExit("pyproject.toml has a [tool.mutmut] section: scripts/mutate.py writes "
                         "its own per group (tests/mutation/groups.toml); remove it")

    def toml_list(items: list[str] | tuple[str, ...]) -> str:
        return "[" + ", ".join(json.dumps(item) for item in items) + "]"

    hooks = dest / ".mutate-hooks"
    hooks.mkdir()
    (hooks / "preload.txt").write_text("\n".join(PRELOAD) + "\n")
    # The plugin runs a mutant's tests in the group's order of files (see there).
    (hooks / TEST_ORDER).write_text("\n".join(group.tests) + "\n")
    for hook in HOOKS.glob("*.py"):
        shutil.copy2(hook, hooks / hook.name)
    (dest / ".mutate-hits").mkdir()
    with pyproject.open("a") as f:
        f.write("\n[tool.mutmut]\n"
                f"source_paths = {toml_list(sources)}\n"
                f"only_mutate = {toml_list([group.session_path(p) for p in group.mutate])}\n"
                f"also_copy = {toml_list(also_copy)}\n"
                f"pytest_add_cli_args = {toml_list(['-p', 'no:cacheprovider', '-p', 'mlops_mutate_plugin', '--hypothesis-seed=0'])}\n"
                f"pytest_add_cli_args_test_selection = {toml_list(group.tests)}\n"
                f"do_not_mutate_patterns = {toml_list(group.skip_lines)}\n"
                "use_git_change_detection = false\n"
                # Not "fork" (mutmut's default: every mutant's process forked from the one
                # that ran the clean tests): its processes inherit the caches those tests
                # filled with the original code (functools.cache in the code and the tests),
                # so a mutant reached only through a cached call never ran and "survived".
                # A fork server that has imported only third-party libraries (PRELOAD): each
                # mutant imports the project and the tests afresh, with the mutant active.
                'process_isolation = "forkserver"\nforkserver_warmup = "import"\n'
                f"preload_modules_file = {json.dumps(str(hooks / 'preload.txt'))}\n")
    for base in (dest, dest / "mutants"):  # the tests' tools: the ASL validator (.venv/node), checkov
        for tool in (".venv", ".venv-checkov"):
            if (ROOT / tool).is_dir():
                (base / tool).symlink_to((ROOT / tool).resolve(), target_is_directory=True)


def session_env(dest: Path) -> dict[str, str]:
    env = {key: value for key, value in os.environ.items()
           if key not in {"PYTHONPATH", "MUTANT_UNDER_TEST", "PYTEST_ADDOPTS"}}
    env.update(PYTHONPATH=str(dest / ".mutate-hooks"), MLOPS_MUTATE_HITS=str(dest / ".mutate-hits"),
               PYTHONDONTWRITEBYTECODE="1",
               # A server that has not answered /ping in 15 s will not (it starts in about
               # one): a start-up-breaking mutant fails fast instead of waiting out 60 s.
               MLOPS_READY_TIMEOUT="15")
    return env


def mutmut(dest: Path, *args: str, capture: bool = False) -> subprocess.CompletedProcess[str]:
    exe = Path(sys.executable).parent / "mutmut"
    return subprocess.run([str(exe), *args], cwd=dest, env=session_env(dest), text=True,
                          capture_output=capture, check=False)


def results(group: Group, dest: Path) -> list[Mutant]:
    from_mutmut = _mutmut_statuses()
    mutants = []
    for path in group.mutate:
        meta = dest / "mutants" / (group.session_path(path) + ".meta")
        if not meta.exists():
            continue
        for key, code in json.loads(meta.read_text())["exit_code_by_key"].items():
            if group.skipped(path, function_name(key)):
                continue
            mutants.append(Mutant(file=group.repo_path(group.session_path(path)),
                                  function=function_name(key), key=key,
                                  status=from_mutmut.get(code, "suspicious")))
    for mutant in (m for m in mutants if m.status not in KILLED | TIMEOUTS):
        shown = mutmut(dest, "show", mutant.key, capture=True).stdout
        mutant.diff = "\n".join(line for line in shown.splitlines() if not line.startswith("#"))
        mutant.before, mutant.after = split_diff(mutant.diff)
    return mutants


def _mutmut_statuses() -> dict[int | None, str]:
    from mutmut.stats import status_by_exit_code

    return dict(status_by_exit_code)


def run_group(group: Group, accepted: list[Accepted], jobs: int, keep: bool) -> tuple[list[Row], list[Mutant], float]:
    dest = Path(tempfile.mkdtemp(prefix=f"mlops-mutate-{group.name}-"))
    start = time.monotonic()
    print(f"\n=== {group.name}: {group.title}", flush=True)
    print(f"    mutating {', '.join(group.mutate)}", flush=True)
    print(f"    with {', '.join(group.tests)}", flush=True)
    print(f"    in {dest}", flush=True)
    try:
        prepare(group, dest)
        proc = mutmut(dest, "run", "--max-children", str(jobs), *group.mutant_globs())
        if proc.returncode != 0:
            raise SystemExit(f"mutmut failed for group {group.name} (exit {proc.returncode}); "
                             f"rerun with KEEP=1 to inspect the session in {dest}")
        mutants = results(group, dest)
    finally:
        if keep:
            print(f"    kept the session in {dest} (mutmut show/apply/browse work there)")
        else:
            shutil.rmtree(dest, ignore_errors=True)
    for mutant in mutants:
        mutant.accepted = next((a for a in accepted if a.matches(mutant)), None)
    seconds = time.monotonic() - start
    return tabulate(mutants, list(group.mutate)), mutants, seconds


def main(argv: list[str] | None = None) -> int:
    groups = load_groups()
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--group", action="append", choices=sorted(groups),
                        help="run this group only (repeatable); default: every group")
    parser.add_argument("--jobs", type=int, default=os.cpu_count() or 2,
                        help="mutants tested at once (default: the CPU count)")
    parser.add_argument("--keep", action="store_true", help="keep the session copies")
    parser.add_argument("--list", action="store_true", help="list the groups and exit")
    args = parser.parse_args(argv)
    if args.list:
        for group in groups.values():
            print(f"{group.name:12} {group.title}: {', '.join(group.mutate)}")
        return 0
    accepted = load_accepted()
    chosen = [groups[name] for name in (args.group or groups)]
    all_rows: list[tuple[Group, list[Row], float]] = []
    unjustified: list[Mutant] = []
    used: set[int] = set()
    for group in chosen:
        rows, mutants, seconds = run_group(group, accepted, args.jobs, args.keep)
        all_rows.append((group, rows, seconds))
        for mutant in mutants:
            if mutant.accepted is not None:
                used.add(id(mutant.accepted))
            elif mutant.status not in KILLED | TIMEOUTS:
                unjustified.append(mutant)
        print(format_table(rows, f"\n{group.name} ({seconds:.0f} s)"), flush=True)
    files = {path for group in chosen for path in group.mutate}
    stale = [a for a in accepted if a.file in files and id(a) not in used]
    print("\n=== summary")
    for group, rows, seconds in all_rows:
        print(format_table(rows, f"\n{group.name}: {group.title} ({seconds:.0f} s)"))
    for entry in stale:
        print(f"\nnote: accepted survivor no longer survives (remove it from {ACCEPTED.relative_to(ROOT)}): "
              f"{entry.file} {entry.function}: {entry.before!r} -> {entry.after!r}")
    if unjustified:
        print(f"\n{len(unjustified)} surviving mutants are neither killed nor accepted "
              f"(kill each with an assertion, or accept it in {ACCEPTED.relative_to(ROOT)} with a reason):")
        for mutant in unjustified:
            print(f"\n--- {mutant.file} {mutant.function} [{mutant.status}] {mutant.key}")
            print(mutant.diff.strip())
        return 1
    print("\nevery surviving mutant is accepted with a reason")
    return 0


if __name__ == "__main__":
    sys.exit(main())
