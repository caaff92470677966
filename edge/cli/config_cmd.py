"""`wolfpack config ...`: validate a board config and export its JSON Schema."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from edge.config import ConfigError, load_board_config
from edge.config.schema import SCHEMA_PATH, board_schema_text


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser(
        "config",
        help="validate board configs and export their JSON Schema",
        description="Work with board config files (YAML, one per board).",
    )
    cmds = parser.add_subparsers(dest="config_command", metavar="ACTION")
    cmds.required = True

    validate = cmds.add_parser(
        "validate",
        help="check a config file and report every error with file:line:column",
        description="Check one or more board configs. Every problem is reported with "
        "file:line:column, the key path, the value found and what was expected. "
        "Exit status 0 when all are valid, 1 otherwise.",
    )
    validate.add_argument("files", nargs="+", metavar="FILE", help="YAML config file")
    validate.add_argument("--json", action="store_true", help="print results as JSON lines")
    validate.set_defaults(handler=_validate)

    schema = cmds.add_parser(
        "schema",
        help=f"write the JSON Schema of board configs (default: {_rel(SCHEMA_PATH)})",
        description="Write the JSON Schema of board configs, for editor autocompletion "
        "(e.g. '# yaml-language-server: $schema=schema.json').",
    )
    schema.add_argument(
        "--out", type=Path, default=SCHEMA_PATH, help="where to write it ('-' for stdout)"
    )
    schema.set_defaults(handler=_schema)


def _rel(path: Path) -> str:
    try:
        return str(path.relative_to(Path.cwd()))
    except ValueError:
        return str(path)


def _validate(args: argparse.Namespace) -> int:
    failed = 0
    for name in args.files:
        try:
            cfg = load_board_config(name)
        except ConfigError as exc:
            failed += 1
            if args.json:
                issues = [
                    {
                        "file": i.file,
                        "line": i.line,
                        "column": i.column,
                        "path": i.path,
                        "message": i.message,
                    }
                    for i in exc.issues
                ]
                print(json.dumps({"file": name, "valid": False, "errors": issues}))
            else:
                print(f"{name}: INVALID", file=sys.stderr)
                print(exc.render(), file=sys.stderr)
            continue
        if args.json:
            print(json.dumps({"file": name, "valid": True, "node": cfg.node.id}))
        else:
            print(f"{name}: OK (node {cfg.node.id} at site {cfg.node.site})")
    return 1 if failed else 0


def _schema(args: argparse.Namespace) -> int:
    text = board_schema_text()
    if str(args.out) == "-":
        sys.stdout.write(text)
        return 0
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(text, encoding="utf-8")
    print(f"wrote {_rel(args.out)}")
    return 0
