"""The data contract and the feature encoding, shared by every job and the server.

Raw rows are ``sex,length,diameter,height,whole_weight,shucked_weight,viscera_weight,
shell_weight[,rings]``. One parser validates files (preprocess, train, evaluate) and
request bodies (serve) alike, so a row the server accepts is a row training accepted.

:class:`FeatureSpec` turns validated rows into the model's feature matrix. It is saved
beside the model (``preprocessing.json``) and read back by the server, so serving encodes
raw rows exactly as training did, even after this module's defaults change.
"""

from __future__ import annotations

import csv
import json
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any, Literal

import numpy as np

from mlcontainer.errors import DataError, UserError

FEATURES: tuple[str, ...] = (
    "sex", "length", "diameter", "height", "whole_weight", "shucked_weight",
    "viscera_weight", "shell_weight",
)
LABEL = "rings"
COLUMNS: tuple[str, ...] = (*FEATURES, LABEL)
NUMERIC: tuple[str, ...] = FEATURES[1:]
#: The data set's documented domain of ``sex`` (male, female, infant).
SEX_VALUES: tuple[str, ...] = ("F", "I", "M")

_SEX_INDEX = {value: i for i, value in enumerate(SEX_VALUES)}
_SEX_INDEX.update({value.lower(): i for i, value in enumerate(SEX_VALUES)})
_SEX_PREFIX = {f"{value},": i for i, value in enumerate(SEX_VALUES)}
_N_FEATURES = len(FEATURES)
_N_COLUMNS = len(COLUMNS)

LabelPolicy = Literal["required", "optional"]


@dataclass
class Rows:
    """Validated rows in columnar form.

    ``sex`` holds indices into :data:`SEX_VALUES`; ``numeric`` the seven measurements
    in :data:`NUMERIC` order; ``label`` the rings (``None`` when not parsed);
    ``fields`` the stripped text fields, kept only when asked for (preprocess writes
    them back unchanged).
    """

    sex: np.ndarray
    numeric: np.ndarray
    label: np.ndarray | None = None
    fields: list[list[str]] | None = None

    def __len__(self) -> int:
        return len(self.sex)

    def take(self, index: np.ndarray) -> Rows:
        return Rows(
            sex=self.sex[index],
            numeric=self.numeric[index],
            label=None if self.label is None else self.label[index],
            fields=None if self.fields is None else [self.fields[i] for i in index],
        )


def _expected_columns(label: LabelPolicy) -> str:
    if label == "required":
        return f"{_N_COLUMNS} columns ({', '.join(COLUMNS)})"
    return f"{_N_FEATURES} columns ({', '.join(FEATURES)}), optionally followed by '{LABEL}'"


#: Longest piece of a bad value an error message quotes: a message stays one short line
#: whatever the request holds (a 60 KB cell, a key of a million characters).
_QUOTE_LIMIT = 40


def _quote(text: str, limit: int = _QUOTE_LIMIT) -> str:
    """``repr(text)``, cut to ``limit`` characters of ``text``."""
    if len(text) <= limit:
        return repr(text)
    return f"{text[:limit]!r}... ({len(text)} characters)"


def _describe(value: Any) -> str:
    """A JSON value for an error message, written as JSON: short, and never recursive (a
    request may nest values thousands of levels deep)."""
    if isinstance(value, str):
        if len(value) <= _QUOTE_LIMIT:
            return json.dumps(value)
        return f"{json.dumps(value[:_QUOTE_LIMIT])}... ({len(value)} characters)"
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        text = repr(value)
        return text if len(text) <= _QUOTE_LIMIT else f"a number of {len(text)} digits"
    if isinstance(value, list):
        return f"a list of {len(value)} value{'' if len(value) == 1 else 's'}"
    if isinstance(value, dict):
        return f"an object of {len(value)} key{'' if len(value) == 1 else 's'}"
    return type(value).__name__


def _bad_number(text: str) -> str:
    return "is empty (a number is required)" if not text.strip() else f"{_quote(text.strip())} is not a number"


def _sex_error(value: object) -> str:
    if isinstance(value, str):
        return f"unknown value {_quote(value)}; expected one of {', '.join(SEX_VALUES)}"
    return f"must be one of {', '.join(SEX_VALUES)} (a string), got {_describe(value)}"


def _check_ranges(numeric: np.ndarray, rows: list[int], *, where: str, row_name: str,
                  names: tuple[str, ...]) -> None:
    """Every measurement must be finite and non-negative."""
    if numeric.min() >= 0 and numeric.max() < np.inf:  # NaN fails both: two cheap passes
        return
    bad = ~np.isfinite(numeric) | (numeric < 0)
    if bad.any():
        r, c = np.argwhere(bad)[0]
        raise DataError(f"must be a finite number >= 0, got {float(numeric[r, c])!r}", where=where,
                        row=rows[r], row_name=row_name, column=names[c])


def _to_float(text: str) -> float:
    """Python's float() with NumPy's text rules: no digit-group underscores, and ASCII
    only (float() also reads other scripts' digits, e.g. Arabic-Indic, which NumPy does
    not); both strip the same white space."""
    if "_" in text or not text.strip().isascii():
        raise ValueError(text)
    return float(text)


def _locate_bad_number(lines: list[tuple[int, str, list[str]]], columns: range, *,
                       where: str) -> None:
    """Raise the DataError for the first cell that is not a number."""
    for number, _, fields in lines:
        for j in columns:
            try:
                _to_float(fields[j])
            except ValueError:
                raise DataError(_bad_number(fields[j]), where=where, row=number,
                                column=COLUMNS[j]) from None


def parse_csv(text: str, *, where: str = "request body", label: LabelPolicy = "optional",
              keep_fields: bool = False) -> Rows:
    """Parse and validate CSV text, with or without a header line.

    ``label="required"``: every row has the 9 columns, ``rings`` last (data files).
    ``label="optional"``: 8 feature columns, a 9th (``rings``) is accepted and ignored
    (inference requests). Blank lines are skipped. Raises :class:`DataError` naming the
    line and column of the first bad value.
    """
    if not keep_fields and '"' not in text:
        rows = _parse_plain(text, where=where, label=label)
        if rows is not None:
            return rows
    return _parse_general(text, where=where, label=label, keep_fields=keep_fields)


def _values(lines: list[str], label: LabelPolicy) -> np.ndarray:
    # NumPy's C parser: several times faster than float() per cell on large batches.
    columns = range(1, _N_COLUMNS if label == "required" else _N_FEATURES)
    return np.loadtxt(lines, delimiter=",", usecols=columns, comments=None, ndmin=2,
                      dtype=np.float64)


def _finish(sex: np.ndarray, values: np.ndarray, row_numbers: list[int], *, where: str,
            label: LabelPolicy, fields: list[list[str]] | None = None) -> Rows:
    label_values = None
    if label == "required":
        label_values = values[:, -1].copy()
        values = np.ascontiguousarray(values[:, :-1])
        _check_ranges(label_values[:, None], row_numbers, where=where, row_name="line",
                      names=(LABEL,))
    _check_ranges(values, row_numbers, where=where, row_name="line", names=NUMERIC)
    return Rows(sex=sex, numeric=values, label=label_values, fields=fields)


def _parse_plain(text: str, *, where: str, label: LabelPolicy) -> Rows | None:
    """The common case, fast: no blank line, no quoting, exact ``sex`` codes and column
    counts, every cell a number. ``None`` sends anything else to the general parser,
    which also words the errors."""
    lines = text.splitlines()
    first = 1
    commas = text.count(",")
    if lines and lines[0][:3].lower() == FEATURES[0]:
        names = tuple(name.strip().lower() for name in lines[0].split(","))
        if names not in ((COLUMNS,) if label == "required" else (FEATURES, COLUMNS)):
            return None
        commas -= lines[0].count(",")
        lines = lines[1:]
        first = 2
    if not lines:
        return None
    get = _SEX_PREFIX.get  # also rejects blank lines and padded codes (general parser)
    codes = [get(line[:2]) for line in lines]
    if None in codes:
        return None
    # NumPy below needs at least the used columns on every row, so the total count of
    # commas settles the column count of every row; only a mix of 8 and 9 columns needs
    # the rows counted one by one.
    n = len(lines)
    if label == "required":
        if commas != (_N_COLUMNS - 1) * n:
            return None
    elif commas != (_N_FEATURES - 1) * n and not (
            {line.count(",") for line in lines} <= {_N_FEATURES - 1, _N_COLUMNS - 1}):
        return None
    try:
        values = _values(lines, label)
    except ValueError:
        return None
    return _finish(np.array(codes, dtype=np.int8), values,
                   list(range(first, first + len(lines))), where=where, label=label)


def _parse_general(text: str, *, where: str, label: LabelPolicy, keep_fields: bool) -> Rows:
    quoted = '"' in text
    # (line number, text without quoting, fields) of every non-blank line
    lines: list[tuple[int, str, list[str]]] = []
    for number, line in enumerate(text.splitlines(), 1):
        if line.strip():
            if quoted:  # rare: a real CSV reader for quoted fields, the plain split otherwise
                try:
                    # One row, never empty: the line holds no line break (splitlines) and
                    # is not blank.
                    fields = next(csv.reader([line]))
                except csv.Error as err:  # e.g. a quoted field over csv's 128 KiB limit
                    raise DataError(f"not valid CSV ({err})", where=where, row=number) from None
                line = ",".join(fields)
            lines.append((number, line, fields if quoted else line.split(",")))
    if lines and lines[0][2][0].strip().lower() == FEATURES[0]:
        number, _, header = lines[0]
        names = tuple(name.strip().lower() for name in header)
        allowed = (COLUMNS,) if label == "required" else (FEATURES, COLUMNS)
        if names not in allowed:
            got = ",".join(names)
            got = got if len(got) <= 200 else f"{got[:200]}... ({len(names)} columns)"
            raise DataError(f"header must be {','.join(allowed[-1])}"
                            + ("" if label == "required" else f" (or without '{LABEL}')")
                            + f", got {got}", where=where, row=number)
        lines = lines[1:]
    if not lines:
        raise DataError("no data rows", where=where)

    sex = np.empty(len(lines), dtype=np.int8)
    sex_index = _SEX_INDEX
    for i, (number, _, fields) in enumerate(lines):
        count = len(fields)
        if count != _N_COLUMNS and (label == "required" or count != _N_FEATURES):
            raise DataError(f"expected {_expected_columns(label)}, got {count}", where=where,
                            row=number)
        code = sex_index.get(fields[0].strip())
        if code is None:
            raise DataError(_sex_error(fields[0].strip()), where=where, row=number,
                            column=FEATURES[0])
        sex[i] = code

    try:
        values = _values([line for _, line, _ in lines], label)
    except ValueError as err:
        columns = range(1, _N_COLUMNS if label == "required" else _N_FEATURES)
        _locate_bad_number(lines, columns, where=where)
        # Not reached while _to_float reads what NumPy reads; still a bad request, not a 500.
        raise DataError(f"a value is not a number ({str(err)[:200]})",  # pragma: no cover
                        where=where) from None
    kept = [[f.strip() for f in fields] for _, _, fields in lines] if keep_fields else None
    return _finish(sex, values, [number for number, _, _ in lines], where=where, label=label,
                   fields=kept)


def _json_number(value: Any, *, where: str, row: int, column: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise DataError(f"must be a JSON number, got {_describe(value)}", where=where,
                        row=row, row_name="instance", column=column)
    try:
        return float(value)
    except OverflowError:  # an integer past float's range: rejected as infinite
        return float("inf") if value > 0 else float("-inf")


def parse_instances(instances: Any, *, where: str = "request body") -> Rows:
    """Validate JSON instances: a list of rows, each a list of 8 (or 9, ``rings`` last)
    values or an object keyed by column name (``rings`` accepted and ignored)."""
    if not isinstance(instances, list):
        raise DataError("'instances' must be a list of rows", where=where)
    if not instances:
        raise DataError("no instances", where=where)
    n = len(instances)
    sex = np.empty(n, dtype=np.int8)
    numeric = np.empty((n, len(NUMERIC)), dtype=np.float64)
    for i, instance in enumerate(instances):
        row = i + 1
        if isinstance(instance, dict):
            unknown = sorted(set(instance) - set(COLUMNS))
            if unknown:
                raise DataError(f"unknown column {_quote(unknown[0])}; expected {', '.join(FEATURES)}",
                                where=where, row=row, row_name="instance")
            missing = [name for name in FEATURES if name not in instance]
            if missing:
                raise DataError(f"missing column {missing[0]!r}", where=where, row=row,
                                row_name="instance")
            values = [instance[name] for name in FEATURES]
        elif isinstance(instance, list):
            if len(instance) not in (_N_FEATURES, _N_COLUMNS):
                raise DataError(f"expected {_expected_columns('optional')}, got {len(instance)}",
                                where=where, row=row, row_name="instance")
            values = instance
        else:
            raise DataError("each instance must be a list of values or an object of columns",
                            where=where, row=row, row_name="instance")
        code = _SEX_INDEX.get(values[0].strip()) if isinstance(values[0], str) else None
        if code is None:
            raise DataError(_sex_error(values[0]), where=where, row=row, row_name="instance",
                            column=FEATURES[0])
        sex[i] = code
        for j in range(1, _N_FEATURES):
            numeric[i, j - 1] = _json_number(values[j], where=where, row=row, column=FEATURES[j])
    _check_ranges(numeric, list(range(1, n + 1)), where=where, row_name="instance",
                  names=NUMERIC)
    return Rows(sex=sex, numeric=numeric)


@dataclass(frozen=True)
class Ratio:
    """A derived feature ``numerator / product(denominator)``; missing (NaN) when the
    denominator is 0, which XGBoost routes down its learned default branch."""

    name: str
    numerator: str
    denominator: tuple[str, ...]


#: Shape features: what fraction of the whole weight is meat, gut and shell, and how dense
#: the animal is. Trees cannot form ratios themselves; these cut the cross-validated RMSE.
DEFAULT_DERIVED: tuple[Ratio, ...] = (
    Ratio("shucked_fraction", "shucked_weight", ("whole_weight",)),
    Ratio("viscera_fraction", "viscera_weight", ("whole_weight",)),
    Ratio("shell_fraction", "shell_weight", ("whole_weight",)),
    Ratio("density", "whole_weight", ("length", "diameter", "height")),
)


@dataclass(frozen=True)
class FeatureSpec:
    """The preprocessing that travels with a model.

    Features, in order: one-hot ``sex_<category>``, the seven measurements, then the
    derived ratios. Saved as ``preprocessing.json`` in the model directory.
    """

    categories: tuple[str, ...] = SEX_VALUES
    derived: tuple[Ratio, ...] = field(default=DEFAULT_DERIVED)

    VERSION = 1

    @property
    def feature_names(self) -> list[str]:
        return ([f"sex_{c}" for c in self.categories] + list(NUMERIC)
                + [ratio.name for ratio in self.derived])

    @cached_property
    def _plan(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Lookup tables for :meth:`encode`: one-hot rows per sex code, and the column
        indices of each ratio's numerator and (padded with a column of ones) denominator."""
        onehot = np.zeros((len(SEX_VALUES), len(self.categories)))
        for code, value in enumerate(SEX_VALUES):
            if value in self.categories:
                onehot[code, self.categories.index(value)] = 1.0
            else:
                onehot[code] = np.nan  # not seen in training: rejected by encode
        position = {name: i for i, name in enumerate(NUMERIC)}
        width = max((len(r.denominator) for r in self.derived), default=1)
        numerators = np.array([position[r.numerator] for r in self.derived], dtype=np.intp)
        denominators = np.full((len(self.derived), width), len(NUMERIC), dtype=np.intp)
        for k, ratio in enumerate(self.derived):
            denominators[k, :len(ratio.denominator)] = [position[n] for n in ratio.denominator]
        return onehot, numerators, denominators

    def encode(self, rows: Rows, dtype: type = np.float32) -> np.ndarray:
        """The feature matrix of validated rows (float32, XGBoost's own precision)."""
        onehot, numerators, denominators = self._plan
        n = len(rows)
        n_cat = len(self.categories)
        n_num = len(NUMERIC)
        out = np.empty((n, n_cat + n_num + len(self.derived)), dtype=dtype)
        out[:, :n_cat] = onehot[rows.sex]
        if n_cat < len(SEX_VALUES) and np.isnan(out[:, :n_cat]).any():
            unknown = SEX_VALUES[int(rows.sex[np.isnan(out[:, 0]).argmax()])]
            raise DataError(f"value {unknown!r} was not seen in training; this model knows "
                            f"{', '.join(self.categories)}", column="sex")
        out[:, n_cat:n_cat + n_num] = rows.numeric
        if len(self.derived):
            padded = np.ones((n, n_num + 1))
            padded[:, :n_num] = rows.numeric
            denominator = padded[:, denominators].prod(axis=2)
            ratio = out[:, n_cat + n_num:]
            ratio.fill(np.nan)
            np.divide(padded[:, numerators], denominator, out=ratio, where=denominator > 0)
        return out

    def to_dict(self) -> dict[str, Any]:
        return {
            "version": self.VERSION,
            "columns": list(FEATURES),
            "label": LABEL,
            "categories": {"sex": list(self.categories)},
            "derived": [{"name": r.name, "numerator": r.numerator,
                         "denominator": list(r.denominator)} for r in self.derived],
            "feature_names": self.feature_names,
        }

    def dumps(self) -> str:
        return json.dumps(self.to_dict(), indent=2) + "\n"

    @classmethod
    def loads(cls, text: str, *, where: str = "preprocessing.json") -> FeatureSpec:
        try:
            data = json.loads(text)
            if data.get("version") != cls.VERSION:
                raise UserError(f"{where}: unsupported version {data.get('version')!r} "
                                f"(this container reads version {cls.VERSION})")
            if tuple(data["columns"]) != FEATURES or data["label"] != LABEL:
                raise UserError(f"{where}: columns {data['columns']} and label {data['label']!r} do "
                                f"not match this container's data contract: columns "
                                f"{list(FEATURES)}, label {LABEL!r}")
            categories = tuple(str(c) for c in data["categories"]["sex"])
            if not categories or not set(categories) <= set(SEX_VALUES):
                raise UserError(f"{where}: sex categories {list(categories)} must be a subset "
                                f"of {list(SEX_VALUES)}")
            derived = tuple(Ratio(str(d["name"]), str(d["numerator"]),
                                  tuple(str(x) for x in d["denominator"]))
                            for d in data["derived"])
        except UserError:
            raise
        except (ValueError, KeyError, TypeError, AttributeError) as err:
            raise UserError(f"{where}: not a valid preprocessing spec ({err!r})") from None
        for ratio in derived:
            for name in (ratio.numerator, *ratio.denominator):
                if name not in NUMERIC:
                    raise UserError(f"{where}: derived feature {ratio.name!r} uses unknown "
                                    f"column {name!r}")
        return cls(categories=categories, derived=derived)
