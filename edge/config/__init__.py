"""Board config: the pydantic model, the located-error loader and the JSON Schema export."""

from edge.config.board import BoardConfig, McuConfig, NodeConfig, StrictModel
from edge.config.errors import ConfigError, ConfigIssue
from edge.config.loader import load_board_config, parse_config_bytes, parse_config_text

__all__ = [
    "BoardConfig",
    "ConfigError",
    "ConfigIssue",
    "McuConfig",
    "NodeConfig",
    "StrictModel",
    "load_board_config",
    "parse_config_bytes",
    "parse_config_text",
]
