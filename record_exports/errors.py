"""Errors the engine raises on purpose, and the one-line form every error is reported in.

The CLI maps them to exit codes, Dagster to failed runs.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

PROBLEM_SEPARATOR = "; "
"""Between the problems of one `ExportInputError`; no problem's own text contains it."""


@dataclass(frozen=True)
class InputProblem:
    """One bad setting: the field it is in and what is wrong with it."""

    field: str
    message: str

    def __str__(self) -> str:
        return f"{self.field}: {self.message}"


class ExportInputError(ValueError):
    """Bad input, found before any record is read.

    It holds every problem found at once (`problems`), each naming its field, so a person
    fixes a config in one go; `field` and `message` are those of the first. Its text is one
    line, `field: message; other_field: message`.
    """

    def __init__(self, field: str, message: str, *more: InputProblem) -> None:
        self.problems = (InputProblem(field, message), *more)
        super().__init__(PROBLEM_SEPARATOR.join(str(problem) for problem in self.problems))
        self.field = field
        self.message = message

    @classmethod
    def of(cls, problems: Sequence[InputProblem]) -> ExportInputError:
        """One error for several problems (at least one)."""
        first, *more = problems
        return cls(first.field, first.message, *more)

    @property
    def fields(self) -> list[str]:
        return [problem.field for problem in self.problems]


class ExportFailedError(RuntimeError):
    """The export started but could not finish for a reason explained in its message (a full
    temporary folder, a locked or damaged SQLite file); no file was left under a final name."""


def first_line(error: BaseException | str) -> str:
    """One line for a request row, a log line or a CLI message: an exception as
    `Type: first line of its message` (its type alone when it has none), an error text (one
    Dagster recorded, or a driver's) as its first non-blank line."""
    if isinstance(error, str):
        lines = error.strip().splitlines()
        return lines[0].strip() if lines else ""
    text = first_line(str(error))
    return f"{type(error).__name__}: {text}" if text else type(error).__name__
