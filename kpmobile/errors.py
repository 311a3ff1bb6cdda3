"""The small error tree. Every error carries a one-line message and a hint naming the fix."""

from __future__ import annotations


class KpError(Exception):
    """A failure the user can act on: `message` says what happened, `hint` what to do."""

    exit_code = 2

    def __init__(self, message: str, hint: str = "") -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def one_line(self) -> str:
        """Give the message and hint joined on one line, as printed to the user."""
        text = self.message.replace("\n", " ").strip()
        if self.hint:
            text = f"{text}; {self.hint.replace(chr(10), ' ').strip()}"
        return text


class ConfigError(KpError):
    """Bad input: an unknown model, a malformed sweep file, a bad flag value."""


class DeviceError(KpError):
    """A phone or adb server is unreachable, unauthorized, offline or full."""


class ConversionError(KpError):
    """A model could not be built, exported or converted to .nb / ONNX."""


class RunnerError(KpError):
    """The runner binary is missing, built for the wrong ABI, crashed or hung."""


class ParseError(KpError):
    """A runner log holds no complete run."""


class EnvironmentProblem(KpError):
    """The Python environment is unsafe to measure with (numpy 2 beside paddlelite, ...)."""
