"""Errors that the CLI reports as one line: each message names the problem and the fix."""


class DmvaeError(Exception):
    """Base class for user-facing errors. `traceback_hint`: the CLI adds how to see the
    traceback (`dmvae --debug`), for errors whose cause lies in a traceback (the user's code)."""

    traceback_hint = False


class UserCodeError(DmvaeError):
    """The user's own code (an experiment module) raised; its traceback is the way to the fix."""

    traceback_hint = True


class DataError(DmvaeError):
    """Missing, corrupt or mismatched data files."""


class CheckpointError(DmvaeError):
    """A checkpoint that cannot be read or does not fit the model."""


class ConfigError(DmvaeError, ValueError):
    """An invalid configuration value or combination."""


class TrainingDiverged(DmvaeError):
    """The loss became NaN or infinite."""
