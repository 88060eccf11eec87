"""The pytest plugin of a ``make mutate`` session (scripts/mutate.py).

* In mutmut's stats run, before its collector reads what a test called: add what the
  test's child processes and the module's earlier tests called (a module-scoped fixture
  runs once, in the first test: mutmut would credit only that one).
* In a mutant's run: the tests run in the order of their files in the group's ``tests``
  (``test-order.txt`` beside this file), not in the arbitrary order mutmut passes them
  (a set). A group lists its fast, in-process tests first and those that start servers
  last; with ``-x`` a mutant the fast tests kill never pays for the slow ones' set-up.
"""

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


def pytest_collection_modifyitems(session, config, items):
    order = {name: rank for rank, name in enumerate(_file_order())}
    if order:  # sorted() is stable: a file's tests keep pytest's order
        items[:] = sorted(items, key=lambda item: order.get(item.nodeid.split("::")[0], len(order)))
