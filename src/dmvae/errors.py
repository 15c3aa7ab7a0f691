"""Errors that the CLI reports as one line: each message names the problem and the fix."""


class DmvaeError(Exception):
    """Base class for user-facing errors."""


class DataError(DmvaeError):
    """Missing, corrupt or mismatched data files."""


class CheckpointError(DmvaeError):
    """A checkpoint that cannot be read or does not fit the model."""


class ConfigError(DmvaeError, ValueError):
    """An invalid configuration value or combination."""


class TrainingDiverged(DmvaeError):
    """The loss became NaN or infinite."""
