"""The pytest plugin of a ``make mutate`` session (scripts/mutate.py).

* In mutmut's stats run, before its collector reads what a test called: add what the
  test's child processes and the module's earlier tests called (a module-scoped fixture
  runs once, in the first test: mutmut would credit only that one).
* In a mutant's run: the tests run in the order of their files in the group's ``tests``
  (``test-order.txt`` beside this file), not in the arbitrary order mutmut passes them
  (a set), and within a file fastest first, by the durations mutmut's stats run measured
  (``mutmut-stats.json`` in the session's folder). A group lists its fast, in-process
  tests first and those that start servers last; with ``-x`` a mutant the fast tests kill
  never pays for the slow ones (a file's linter runs, a server's start).
"""

import json
import os

import pytest

_MODULE_HITS = {}


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_teardown(item, nextitem):
    if os.environ.get("MUTANT_UNDER_TEST") != "stats":
        return
    from mutmut.state import state

    folder = os.environ.get("MLOPS_MUTATE_HITS")
    for name in os.listdir(folder) if folder else []:
        path = os.path.join(folder, name)
        try:
            os.rename(path, path + ".read")
        except OSError:
            continue
        with open(path + ".read") as f:
            state()._stats.update(line for line in f.read().splitlines() if line)
        os.unlink(path + ".read")
    module = _MODULE_HITS.setdefault(item.nodeid.split("::")[0], set())
    module.update(state()._stats)
    state()._stats.update(module)


def _file_order():
    path = os.path.join(os.path.dirname(os.path.abspath(__file__)), "test-order.txt")
    try:
        with open(path) as f:
            return [line.strip() for line in f if line.strip()]
    except OSError:
        return []


def _durations():
    """The seconds each test took in mutmut's stats run ({} before that run)."""
    try:
        with open("mutmut-stats.json") as f:
            return json.load(f).get("duration_by_test", {})
    except (OSError, ValueError):
        return {}


def pytest_collection_modifyitems(session, config, items):
    order = {name: rank for rank, name in enumerate(_file_order())}
    if not order:
        return
    durations = _durations()

    def key(item):  # sorted() is stable: unmeasured tests keep pytest's order, last in their file
        duration = durations.get(item.nodeid)
        return (order.get(item.nodeid.split("::")[0], len(order)), duration is None, duration or 0.0)

    items[:] = sorted(items, key=key)
