"""Config errors a technician can act on: where (file:line:column, key path), what, and why."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class ConfigIssue:
    """One problem in a config file, located as precisely as the YAML allows."""

    file: str
    line: int | None  # 1-based
    column: int | None  # 1-based
    path: str  # dotted key path, e.g. "mcus[0].baud"; "" for the document itself
    message: str

    def __str__(self) -> str:
        where = self.file
        if self.line is not None:
            where += f":{self.line}"
            if self.column is not None:
                where += f":{self.column}"
        key = f" {self.path}:" if self.path else ""
        return f"{where}:{key} {self.message}"


class ConfigError(Exception):
    """A config that must not be used; carries every issue found, not just the first."""

    def __init__(self, issues: list[ConfigIssue]) -> None:
        self.issues = issues
        super().__init__(self.render())

    @classmethod
    def single(cls, file: str, message: str) -> ConfigError:
        """One unlocated problem with the whole file (too big, not UTF-8, unreadable)."""
        return cls([ConfigIssue(file, None, None, "", message)])

    def render(self) -> str:
        count = len(self.issues)
        head = f"config has {count} error{'s' if count != 1 else ''}:"
        return "\n".join([head, *(f"  {issue}" for issue in self.issues)])


def format_path(loc: tuple[str | int, ...]) -> str:
    """Render a key path the way it reads in YAML: ``mcus[0].baud``."""
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out
