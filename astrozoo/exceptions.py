"""Exceptions users may want to catch. Each message names the file or model at fault."""

__all__ = ["AstrozooError", "InputError", "WeightsNotAvailableError", "IntegrityError",
           "OutputContractError", "HubUnavailableError",
           "OutputError", "ConfigError"]


class AstrozooError(Exception):
    """Base class of astrozoo's errors."""


class _PathError(AstrozooError):
    """An error about one file: ``path`` (or ``None``) and ``reason``, kept when pickled."""

    def __init__(self, message: str, path=None):
        self.path = None if path is None else str(path)
        self.reason = message
        super().__init__(f"{self.path}: {message}" if self.path else message)

    def __reduce__(self):
        # Keep `path` when the error crosses processes (DataLoader workers).
        return type(self), (self.reason, self.path)


class InputError(_PathError, ValueError):
    """An input object cannot be read or conformed to the model's spec.

    ``path`` names the offending file (or ``None`` for in-memory inputs); the message says why.
    """


class WeightsNotAvailableError(AstrozooError, RuntimeError):
    """The model's files are neither bundled nor cached, and the Hub cannot be reached."""


class IntegrityError(AstrozooError, RuntimeError):
    """A weights file is not the one the registry or its config.json pins (sha256 mismatch),
    is truncated or not a safetensors file, or a model directory holds a pickled checkpoint or
    a file linked from outside it."""


class ConfigError(AstrozooError, ValueError):
    """A model's ``config.json`` is unreadable or asks for something astrozoo refuses: an
    unknown field or architecture, a size outside the documented bounds, or a setting that
    would make the loader read other files."""


class OutputContractError(AstrozooError, RuntimeError):
    """A model's ``postprocess`` did not return the columns its task requires."""


class HubUnavailableError(AstrozooError, RuntimeError):
    """The Hugging Face Hub cannot be reached (offline mode or no connection)."""


class OutputError(_PathError, OSError):
    """An output file cannot be written: its directory is read-only, the disk is (or would
    become) full, or a write failed.

    ``path`` names the file or directory; the message says why and whether a rerun resumes.
    """
