"""The shape of the code: no import loop, modules a reader holds in one sitting, the
Lambda functions' logging copies kept equal.

Sizes: a module over ``MAX_MODULE_LINES`` or a function over ``MAX_FUNCTION_LINES``
needs a reason, written in the function's docstring as "Long because ..." (for a
function) or in the module docstring (for a module).
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = "mlops_templates"
#: Product code: what users run or deploy (tests are not counted).
PRODUCT = [ROOT / PACKAGE, ROOT / "lambdas", ROOT / "container" / "mlcontainer", ROOT / "scripts"]
MAX_MODULE_LINES = 500
MAX_FUNCTION_LINES = 80
REASON = re.compile(r"\bLong because\b")


def _product_files() -> list[Path]:
    return sorted(p for root in PRODUCT for p in root.rglob("*.py"))


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _package_modules() -> dict[str, Path]:
    return {_module_name(p): p for p in sorted((ROOT / PACKAGE).rglob("*.py"))}


def _top_level_imports(tree: ast.Module, module: str, is_package: bool) -> set[str]:
    """Modules imported when ``module`` is imported: top-level statements only (an
    import inside a function, or under ``if TYPE_CHECKING``, runs later or never)."""
    names: set[str] = set()
    base = module if is_package else module.rpartition(".")[0]
    for node in tree.body:
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                anchor = base.split(".")
                anchor = anchor[: len(anchor) - node.level + 1]
                source = ".".join(anchor + ([node.module] if node.module else []))
            else:
                source = node.module or ""
            names.add(source)
            # "from pkg import sub" imports the submodule pkg.sub.
            names.update(f"{source}.{alias.name}" for alias in node.names)
    return names


def _import_graph() -> dict[str, set[str]]:
    modules = _package_modules()
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        tree = ast.parse(path.read_text())
        imported = _top_level_imports(tree, name, path.name == "__init__.py")
        graph[name] = {target for target in imported if target in modules and target != name}
    return graph


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Elementary cycles found by depth-first search (one per back edge)."""
    found: list[list[str]] = []
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> None:
        state[node] = 1
        stack.append(node)
        for target in sorted(graph[node]):
            # A package's __init__ importing its own submodules is how packages work.
            if node.startswith(target + ".") or target.startswith(node + "."):
                continue
            if state.get(target) == 1:
                found.append(stack[stack.index(target) :] + [target])
            elif target not in state:
                visit(target)
        stack.pop()
        state[node] = 2

    for node in sorted(graph):
        if node not in state:
            visit(node)
    return found


def test_import_graph_is_read_from_real_modules() -> None:
    graph = _import_graph()
    assert "mlops_templates.naming" in graph["mlops_templates.config"]
    assert "mlops_templates.config" not in graph["mlops_templates.naming"]


def test_no_import_cycles() -> None:
    cycles = _cycles(_import_graph())
    assert not cycles, "import cycles:\n" + "\n".join(" -> ".join(c) for c in cycles)


def test_cycle_finder_finds_a_cycle() -> None:
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": set()}
    assert _cycles(graph) == [["a", "b", "c", "a"]]


def _label(path: Path) -> str:
    return str(path.relative_to(ROOT)) if path.is_relative_to(ROOT) else path.name


def _long_functions(path: Path) -> list[str]:
    tree = ast.parse(path.read_text())
    long = []
    for node in ast.walk(tree):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            length = node.end_lineno - node.lineno + 1
            if length > MAX_FUNCTION_LINES and not REASON.search(ast.get_docstring(node) or ""):
                long.append(f"{_label(path)}:{node.lineno} {node.name} ({length} lines)")
    return long


def test_functions_are_short_or_say_why() -> None:
    offenders = [entry for path in _product_files() for entry in _long_functions(path)]
    assert not offenders, (
        f"functions over {MAX_FUNCTION_LINES} lines without 'Long because' in the "
        "docstring:\n" + "\n".join(offenders)
    )


def test_modules_are_short_or_say_why() -> None:
    offenders = []
    for path in _product_files():
        lines = len(path.read_text().splitlines())
        docstring = ast.get_docstring(ast.parse(path.read_text())) or ""
        if lines > MAX_MODULE_LINES and not REASON.search(docstring):
            offenders.append(f"{path.relative_to(ROOT)} ({lines} lines)")
    assert not offenders, f"modules over {MAX_MODULE_LINES} lines:\n" + "\n".join(offenders)


def test_size_check_sees_a_long_function(tmp_path: Path) -> None:
    body = "\n".join(f"    x{i} = {i}" for i in range(MAX_FUNCTION_LINES))
    long = tmp_path / "long.py"
    long.write_text(f"def f():\n{body}\n")
    assert _long_functions(long) == [f"long.py:1 f ({MAX_FUNCTION_LINES + 1} lines)"]
    explained = tmp_path / "explained.py"
    explained.write_text(f'def f():\n    """Long because it is a table."""\n{body}\n')
    assert _long_functions(explained) == []


# -- the Lambda functions' logging ------------------------------------------------------

LOGGING_START = "# -- logging: the same in every lambdas/*/app.py"
LOGGING_END = "# -- end of logging"


def _logging_block(path: Path) -> str:
    text = path.read_text()
    start, end = text.index(LOGGING_START), text.index(LOGGING_END)
    return text[start:end]


@pytest.mark.parametrize(
    "path", sorted((ROOT / "lambdas").glob("*/app.py")), ids=lambda p: p.parent.name
)
def test_lambda_logging_is_the_same_everywhere(path: Path) -> None:
    # Each function is packaged from its own folder, so the code cannot be shared
    # by import; the copies must not drift apart.
    reference = _logging_block(ROOT / "lambdas" / "api" / "app.py")
    assert "class _JsonFormatter" in reference and "def _make_logger" in reference
    assert _logging_block(path) == reference
