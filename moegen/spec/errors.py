"""Errors a user can act on: what is wrong, where (file:line:col), and what to do."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Location:
    """A 1-based position in a source file."""

    path: str
    line: int
    col: int

    def __str__(self) -> str:
        return f"{self.path}:{self.line}:{self.col}"


@dataclass(frozen=True)
class SpecError:
    """One problem found in variants.yaml."""

    loc: Location
    message: str
    hint: str = ""

    def __str__(self) -> str:
        text = f"{self.loc}: error: {self.message}"
        if self.hint:
            text += f"\n    fix: {self.hint}"
        return text


class SpecErrors(Exception):
    """Every problem found in one run, sorted by position."""

    def __init__(self, errors: list[SpecError]):
        self.errors = sorted(errors, key=lambda e: (e.loc.path, e.loc.line, e.loc.col, e.message))
        super().__init__(self.render())

    def render(self) -> str:
        lines = [str(e) for e in self.errors]
        n = len(self.errors)
        lines.append(f"{n} error{'s' if n != 1 else ''}; nothing was written.")
        return "\n".join(lines)
