"""Exceptions users may want to catch. Each message names the file or model at fault."""

__all__ = ["AstrozooError", "InputError", "WeightsNotAvailableError", "IntegrityError",
           "OutputContractError", "HubUnavailableError"]


class AstrozooError(Exception):
    """Base class of astrozoo's errors."""


class InputError(AstrozooError, ValueError):
    """An input object cannot be read or conformed to the model's spec.

    ``path`` names the offending file (or ``None`` for in-memory inputs); the message says why.
    """

    def __init__(self, message: str, path=None):
        self.path = None if path is None else str(path)
        self.reason = message
        super().__init__(f"{self.path}: {message}" if self.path else message)

    def __reduce__(self):
        # Keep `path` when the error crosses processes (DataLoader workers).
        return type(self), (self.reason, self.path)


class WeightsNotAvailableError(AstrozooError, RuntimeError):
    """The model's files are neither bundled nor cached, and the Hub cannot be reached."""


class IntegrityError(AstrozooError, RuntimeError):
    """A weights file is not the one the registry or its config.json pins (sha256 mismatch),
    or is not a safetensors file."""


class OutputContractError(AstrozooError, RuntimeError):
    """A model's ``postprocess`` did not return the columns its task requires."""


class HubUnavailableError(AstrozooError, RuntimeError):
    """The Hugging Face Hub cannot be reached (offline mode or no connection)."""
