"""The JSON Schema of the board config, so editors can autocomplete and check configs."""

from __future__ import annotations

import json
from pathlib import Path

from edge.config.board import board_model_for

SCHEMA_PATH = Path(__file__).resolve().parents[2] / "configs" / "schema.json"


def board_schema_text(machine: str = "diverter") -> str:
    """The JSON Schema of a board running ``machine`` (configs/schema.json: the diverter's).

    Raises ``edge.runtime.machine.MachineError`` for a kind this build does not have.
    """
    schema = board_model_for(machine).model_json_schema()
    schema = {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": "https://wolfpack.example/schemas/board-config.json",
        **schema,
    }
    return json.dumps(schema, indent=2, sort_keys=True) + "\n"


def write_board_schema(path: Path = SCHEMA_PATH) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(board_schema_text(), encoding="utf-8")
    return path
