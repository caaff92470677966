"""Reads a board's YAML config and validates it, mapping every error back to file:line:column.

The YAML is parsed with ruamel.yaml's round-trip loader because it keeps the position of every
key and value; pydantic then validates plain data, and each pydantic error location is walked
back through the ruamel tree to find where the technician must look.

Every entry point bounds its input first (edge/config/limits.py): size before decoding, strict
UTF-8, then a parse that refuses aliases and stops at a maximum depth and node count, so no
file, however hostile, costs more than a bounded time and memory. The only error any of them
raises for bad content is ConfigError.
"""

from __future__ import annotations

import difflib
import types
import typing
from pathlib import Path
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError
from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap, CommentedSeq
from ruamel.yaml.composer import Composer, ComposerError, MaxDepthExceededError
from ruamel.yaml.error import MarkedYAMLError
from ruamel.yaml.events import AliasEvent
from ruamel.yaml.scanner import RoundTripScanner, ScannerError

from edge.config.board import BoardBase, BoardConfig, board_model_for
from edge.config.errors import ConfigError, ConfigIssue, format_path
from edge.config.limits import (
    MAX_CONFIG_BYTES,
    MAX_DEPTH,
    MAX_NODES,
    LimitError,
    check_size,
    decode_utf8,
    read_limited,
)

M = TypeVar("M", bound=BaseModel)


def load_board_config(path: str | Path) -> BoardConfig:
    """Load and validate one board config file; raise ConfigError listing every problem.

    The file's ``machine:`` key (default ``diverter``) picks the model (docs/runtime.md): a
    diverter board is a ``BoardConfig``; another kind's board is a ``BoardBase`` with that
    kind's section (typed ``BoardConfig`` here for the callers that predate the other kinds;
    check ``board.machine`` before reading ``board.cell``).
    """
    path = Path(path)
    try:
        content = read_limited(path)
    except FileNotFoundError:
        raise ConfigError([ConfigIssue(str(path), None, None, "", "file not found")]) from None
    except LimitError as exc:
        raise ConfigError([ConfigIssue(str(path), None, None, "", _after_name(exc))]) from None
    except OSError as exc:
        why = exc.strerror or str(exc)
        raise ConfigError([ConfigIssue(str(path), None, None, "", f"cannot read: {why}")]) from None
    return parse_config_bytes(content, str(path), BoardConfig)


def parse_config_bytes(content: bytes, filename: str, model: type[M]) -> M:
    """Validate raw bytes: size limit, strict UTF-8, then :func:`parse_config_text`."""
    try:
        check_size(len(content), filename)
        text = decode_utf8(content, filename)
    except LimitError as exc:
        raise ConfigError([ConfigIssue(filename, None, None, "", _after_name(exc))]) from None
    return parse_config_text(text, filename, model)


def _after_name(exc: LimitError) -> str:
    """The limit's message without its leading 'NAME: ' (the issue prints the file itself)."""
    return str(exc).split(": ", 1)[-1]


def parse_config_text(text: str, filename: str, model: type[M]) -> M:
    """Validate YAML text against ``model``; ``filename`` is only used in messages."""
    if len(text) > MAX_CONFIG_BYTES:  # characters: at least as many bytes
        raise ConfigError(
            [
                ConfigIssue(
                    filename,
                    None,
                    None,
                    "",
                    f"{len(text)} characters is over the limit of {MAX_CONFIG_BYTES} bytes for "
                    "a config; refused before parsing",
                )
            ]
        )
    tree = _parse_yaml(text, filename)
    if tree is None:
        raise ConfigError(
            [ConfigIssue(filename, 1, 1, "", "the file is empty; expected a mapping of keys")]
        )
    if not isinstance(tree, CommentedMap):
        raise ConfigError(
            [
                ConfigIssue(
                    filename,
                    1,
                    1,
                    "",
                    f"expected a mapping of keys at the top level, got {_kind(tree)}",
                )
            ]
        )
    if model is BoardConfig or model is BoardBase:  # "a board config": the kind's model
        model = _board_model(tree, filename)  # type: ignore[assignment]
    try:
        return model.model_validate(_plain(tree))
    except ValidationError as exc:
        issues = [_issue_from_error(err, tree, filename, model) for err in exc.errors()]
        raise ConfigError(_drop_missing_explained_by_typos(issues)) from None


def _board_model(tree: CommentedMap, filename: str) -> type[BoardBase]:
    """The board model for the file's ``machine:`` (``diverter`` when absent), or a located
    ConfigError: an unknown kind, or one this build does not have."""
    from edge.runtime.machine import MachineError

    name = tree.get("machine", "diverter")
    if not isinstance(name, str):
        line, column = _value_position(tree, "machine")
        raise ConfigError(
            [ConfigIssue(filename, line, column, "machine",
                         f"got {_show(_plain(name))}; expected a machine name")]
        )  # fmt: skip
    try:
        return board_model_for(name)
    except MachineError as exc:
        line, column = _value_position(tree, "machine")
        raise ConfigError([ConfigIssue(filename, line, column, "machine", str(exc))]) from None


def _value_position(tree: CommentedMap, key: str) -> tuple[int | None, int | None]:
    if key not in tree:
        return None, None
    line, column = tree.lc.value(key)
    return line + 1, column + 1


def _drop_missing_explained_by_typos(issues: list[ConfigIssue]) -> list[ConfigIssue]:
    """A misspelt key is one mistake: keep "did you mean 'site'", drop "site: missing"."""
    suggested: set[str] = set()
    for issue in issues:
        if "did you mean" in issue.message:
            parent = issue.path.rpartition(".")[0] if "." in issue.path else ""
            name = issue.message.split("did you mean ", 1)[1].split("?", 1)[0].strip("'")
            suggested.add(f"{parent}.{name}" if parent else name)
    return [i for i in issues if not (i.message == "missing required key" and i.path in suggested)]


class _LimitRefusal(ComposerError):
    """A document refused by a limit of :class:`_BoundedComposer` (not a syntax error)."""


class _ScanLimitRefusal(ScannerError):
    """Flow nesting refused by :class:`_BoundedScanner` (not a syntax error)."""


class _BoundedScanner(RoundTripScanner):
    """ruamel's scanner, refusing ``[[[[...`` beyond the depth limit as it meets it.

    Without this the scanner reads a whole run of open brackets ahead (each may start a
    simple key) before the composer sees the depth: seconds for a 1 MiB run.
    """

    def fetch_flow_collection_start(self, TokenClass: Any, to_push: str) -> None:
        if self.flow_level >= MAX_DEPTH:
            raise _ScanLimitRefusal(
                None,
                None,
                f"YAML nested deeper than {MAX_DEPTH} levels (a board config nests about 6)",
                self.reader.get_mark(),
            )
        super().fetch_flow_collection_start(TokenClass, to_push)


class _BoundedComposer(Composer):
    """ruamel's composer, refusing aliases and counting nodes as the document is built.

    Aliases are refused rather than bounded: no board config needs them, and a handful of
    them expand a 1 KB file into a billion nodes (the "billion laughs"). Depth is bounded by
    ruamel's own ``max_depth``; nodes are counted here because a flat file of tiny scalars
    can be just as costly to validate.
    """

    def compose_node(self, parent: Any, index: Any) -> Any:
        if self.parser.check_event(AliasEvent):
            event = self.parser.peek_event()
            raise _LimitRefusal(
                None,
                None,
                f"YAML aliases (*{event.anchor}) are not allowed in a board config (they let a "
                "small file expand without bound); write the value out",
                event.start_mark,
            )
        count = getattr(self, "_wp_nodes", 0) + 1
        self._wp_nodes = count
        if count > MAX_NODES:
            event = self.parser.peek_event()
            raise _LimitRefusal(
                None,
                None,
                f"more than {MAX_NODES} YAML nodes; a board config has a few hundred",
                event.start_mark,
            )
        return super().compose_node(parent, index)


def _parse_yaml(text: str, filename: str) -> Any:
    yaml = YAML(typ="rt")
    yaml.allow_duplicate_keys = False
    yaml.Composer = _BoundedComposer
    yaml.Scanner = _BoundedScanner
    yaml.max_depth = MAX_DEPTH
    try:
        return yaml.load(text)
    except MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark is not None else None
        column = mark.column + 1 if mark is not None else None
        problem = exc.problem or exc.context or "invalid YAML"
        context = f" ({exc.context})" if exc.context and exc.problem else ""
        message = f"YAML syntax error: {problem}{context}"
        if "found duplicate key" in str(exc):
            message = "YAML error: " + " ".join(str(exc.problem).split())
        elif isinstance(exc, MaxDepthExceededError):
            message = (
                f"refused: YAML nested deeper than {MAX_DEPTH} levels (a board config nests "
                "about 6)"
            )
        elif isinstance(exc, _LimitRefusal | _ScanLimitRefusal):
            message = f"refused: {problem}"
        raise ConfigError([ConfigIssue(filename, line, column, "", message)]) from None
    except RecursionError:
        raise ConfigError(
            [ConfigIssue(filename, None, None, "", f"YAML nested deeper than {MAX_DEPTH} levels")]
        ) from None
    except Exception as exc:  # ruamel raises a few unmarked errors (e.g. bad tags, huge ints)
        detail = " ".join(str(exc).split())[:200]
        issue = ConfigIssue(filename, None, None, "", f"YAML error: {detail}")
        raise ConfigError([issue]) from None


def _plain(node: Any) -> Any:
    """Strip ruamel's wrapper types so validation sees ordinary Python values."""
    if isinstance(node, dict):
        return {str(k) if not isinstance(k, str) else k: _plain(v) for k, v in node.items()}
    if isinstance(node, list):
        return [_plain(v) for v in node]
    if isinstance(node, bool) or node is None:
        return node
    if isinstance(node, int):
        return int(node)
    if isinstance(node, float):
        return float(node)
    if isinstance(node, str):
        return str(node)
    return node


def _kind(value: Any) -> str:
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, bool):
        return "a boolean"
    if value is None:
        return "nothing (null)"
    if isinstance(value, int | float):
        return "a number"
    return "text"


def _issue_from_error(
    err: Any, tree: CommentedMap, filename: str, model: type[BaseModel]
) -> ConfigIssue:
    """Turn one pydantic error into a located, readable issue."""
    data_loc, line, column = _locate(tree, tuple(err["loc"]), err["type"])
    path = format_path(data_loc)
    kind = err["type"]
    value = err.get("input")
    if kind == "missing":
        message = "missing required key"
        parent = format_path(data_loc[:-1])
        path = path or parent
    elif kind == "extra_forbidden":
        message = _unknown_key_message(model, data_loc, tree)
    else:
        expected = _expected_text(err["msg"])
        shown = value is not None and not isinstance(value, dict | list)
        message = f"got {_show(value)}; {expected}" if shown else expected
    return ConfigIssue(filename, line, column, path, message)


def _expected_text(msg: str) -> str:
    for prefix, replacement in (
        ("Input should be ", "expected "),
        ("Value error, ", ""),
        ("Assertion failed, ", ""),
    ):
        if msg.startswith(prefix):
            return replacement + msg[len(prefix) :]
    return msg[:1].lower() + msg[1:]


def _show(value: Any) -> str:
    if isinstance(value, dict | list):
        return _kind(value)
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _locate(
    tree: Any, loc: tuple[Any, ...], kind: str
) -> tuple[tuple[Any, ...], int | None, int | None]:
    """Follow a pydantic loc through the YAML tree.

    Returns the part of the loc that exists in the data (pydantic adds union tags and
    validator names that the file does not have) and the best 1-based line/column for it.
    """
    node = tree
    data_loc: list[Any] = []
    line, column = tree.lc.line + 1, tree.lc.col + 1
    for index, part in enumerate(loc):
        last = index == len(loc) - 1
        if isinstance(node, CommentedMap) and part in node:
            at_key = last and kind == "extra_forbidden"
            pos = node.lc.key(part) if at_key else node.lc.value(part)
            line, column = pos[0] + 1, pos[1] + 1
            data_loc.append(part)
            node = node[part]
        elif isinstance(node, CommentedSeq) and isinstance(part, int) and part < len(node):
            pos = node.lc.item(part)
            line, column = pos[0] + 1, pos[1] + 1
            data_loc.append(part)
            node = node[part]
        elif last and kind == "missing":
            data_loc.append(part)
        else:
            continue  # a union tag or validator name that is not in the file
    return tuple(data_loc), line, column


def _unknown_key_message(model: type[BaseModel], loc: tuple[Any, ...], tree: Any) -> str:
    key = str(loc[-1]) if loc else "?"
    allowed = sorted(_fields_at(model, loc[:-1], tree))
    message = f"unknown key {key!r}"
    close = difflib.get_close_matches(key, allowed, n=1, cutoff=0.6)
    if close:
        message += f"; did you mean {close[0]!r}?"
    if allowed:
        message += f" (allowed here: {', '.join(allowed)})"
    return message


def _fields_at(model: type[BaseModel], loc: tuple[Any, ...], tree: Any) -> set[str]:
    """Field names of the model(s) that validate the mapping at ``loc``."""
    candidates: list[Any] = [model]
    for part in loc:
        nxt: list[Any] = []
        for cand in candidates:
            for typ in _unwrap(cand):
                if isinstance(part, int):
                    origin = typing.get_origin(typ)
                    if origin in (list, tuple, set, frozenset):
                        nxt.extend(typing.get_args(typ)[:1])
                elif isinstance(typ, type) and issubclass(typ, BaseModel):
                    field = typ.model_fields.get(part)
                    if field is not None:
                        nxt.append(field.annotation)
                elif typing.get_origin(typ) is dict:
                    nxt.append(typing.get_args(typ)[1])
        candidates = nxt
    names: set[str] = set()
    for cand in candidates:
        for typ in _unwrap(cand):
            if isinstance(typ, type) and issubclass(typ, BaseModel):
                names.update(typ.model_fields)
    return names


def _unwrap(typ: Any) -> list[Any]:
    """Flatten Annotated / Optional / Union into the concrete types they allow."""
    origin = typing.get_origin(typ)
    if origin is typing.Annotated:
        return _unwrap(typing.get_args(typ)[0])
    if origin is typing.Union or origin is types.UnionType:
        out: list[Any] = []
        for arg in typing.get_args(typ):
            out.extend(_unwrap(arg))
        return out
    return [typ]
