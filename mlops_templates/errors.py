"""Exceptions the CLI reports without a traceback."""


class MlopsError(Exception):
    """Base class: the message is meant for the user, ending in what to fix."""


class ConfigError(MlopsError):
    """The config file (or a value in it) is invalid."""


class LintError(MlopsError):
    """A rendered template has lint or policy findings."""
