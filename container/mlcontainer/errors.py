"""Exceptions that carry a message meant for the person running the job or sending the request."""

from __future__ import annotations


class UserError(Exception):
    """Bad input (data, hyperparameters, model artifact): the message says what to fix.

    Jobs report it without a traceback; everything else is an internal error and keeps
    its traceback in the log.
    """


class DataError(UserError):
    """A value in a CSV file or a request breaks the data contract.

    The message starts with where the bad value is: the file or request (``where``),
    the row (``row``, 1-based, named ``row_name``: "line" for CSV, "instance" for
    JSON) and the column name.
    """

    def __init__(self, reason: str, *, where: str = "", row: int | None = None,
                 row_name: str = "line", column: str | None = None) -> None:
        parts = [where] if where else []
        if row is not None:
            parts.append(f"{row_name} {row}")
        if column is not None:
            parts.append(f"column '{column}'")
        location = ", ".join(parts)
        super().__init__(f"{location}: {reason}" if location else reason)
        self.where = where
        self.row = row
        self.column = column
        self.reason = reason
