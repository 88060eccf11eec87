"""ASL intrinsic functions (``States.Format``, ``States.StringToJson``...) as strings,
with their string literals escaped the way Step Functions requires."""

from __future__ import annotations

import re

# Characters that must be escaped inside an intrinsic function's string literal.
_INTRINSIC_RESERVED = re.compile(r"([\\'{}])")


def literal(text: str) -> str:
    """``text`` as an intrinsic-function string literal (quoted, reserved chars escaped)."""
    return "'" + _INTRINSIC_RESERVED.sub(r"\\\1", text) + "'"


def fmt(template: str, *args: str) -> str:
    """``States.Format``: ``template`` uses ``{}`` for each of ``args`` (paths or intrinsics).

    Text around the placeholders is escaped, so ``fmt("rmse < {}", "$.x")`` is safe.
    """
    pieces = template.split("{}")
    if len(pieces) - 1 != len(args):
        raise ValueError(
            f"format string {template!r} has {len(pieces) - 1} placeholders for {len(args)} arguments"
        )
    quoted = "{}".join(_INTRINSIC_RESERVED.sub(r"\\\1", piece) for piece in pieces)
    return "States.Format(" + ", ".join(["'" + quoted + "'", *args]) + ")"


def string_to_json(path: str) -> str:
    """``States.StringToJson(path)``."""
    return f"States.StringToJson({path})"


def json_merge(base: str, override: str) -> str:
    """``States.JsonMerge``: a shallow merge where keys of ``override`` win."""
    return f"States.JsonMerge({base}, {override}, false)"


def string_split(text: str, separator: str) -> str:
    """``States.StringSplit`` of an intrinsic string (``text``) on ``separator``."""
    return f"States.StringSplit({text}, {literal(separator)})"


def array_get_item(array: str, index: int) -> str:
    """``States.ArrayGetItem``: item ``index`` (from 0) of an intrinsic array."""
    return f"States.ArrayGetItem({array}, {index})"


def uuid() -> str:
    """``States.UUID()``: a random version 4 UUID (lower-case hex), new on each call."""
    return "States.UUID()"

