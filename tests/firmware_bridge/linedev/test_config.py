"""The line_devices: config section: alone, and located errors through the board loader."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from edge.config import ConfigError, load_board_config
from firmware_bridge.linedev import LineDeviceConfig


def test_defaults_are_a_free_running_crlf_scanner():
    cfg = LineDeviceConfig.model_validate({"name": "s", "serial": {"port": "/dev/ttyUSB0"}})
    assert cfg.framing == "crlf" and cfg.no_read_token == "NoRead" and cfg.trigger is None
    assert cfg.serial is not None and cfg.serial.baud == 9600
    assert cfg.link_description == "/dev/ttyUSB0 @ 9600"


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        ({"name": "s"}, "exactly one of 'serial'"),
        (
            {"name": "s", "serial": {"port": "/x"}, "tcp": {"host": "h", "port": 1}},
            "exactly one of 'serial'",
        ),
        ({"name": "s", "serial": {"port": "/x", "baud": 9601}}, "expected one of"),
        ({"name": "s", "serial": {"port": "/x"}, "encoding": "klingon"}, "unknown text encoding"),
        ({"name": "s", "serial": {"port": "/x"}, "framing": "etx"}, "crlf"),
        ({"name": "s", "serial": {"port": "/x"}, "reconnect": {"min_s": 5, "max_s": 1}}, "max_s"),
        ({"name": "s", "serial": {"port": "/x"}, "trigger": {"command": ""}}, "at least 1"),
    ],
)
def test_bad_entries_are_refused_with_the_reason(entry, message):
    with pytest.raises(ValidationError, match=message):
        LineDeviceConfig.model_validate(entry)


def test_board_loader_locates_an_error_in_line_devices(tmp_path):
    path = tmp_path / "board.yaml"
    path.write_text(
        "node: {id: cell-1, site: s}\n"
        "line_devices:\n"
        "  - name: scanner-1\n"
        "    serial: {port: /dev/ttyUSB0}\n"
        "  - name: scanner-2\n"
        "    tcp: {host: 10.0.0.5, port: 51236}\n"
        "    framng: stx-etx\n",
        encoding="utf-8",
    )
    with pytest.raises(ConfigError) as err:
        load_board_config(path)
    text = err.value.render()
    assert "board.yaml:7:" in text and "line_devices[1].framng" in text and "framing" in text


def test_board_loader_refuses_two_devices_with_one_name(tmp_path):
    path = tmp_path / "board.yaml"
    path.write_text(
        "node: {id: cell-1, site: s}\n"
        "line_devices:\n"
        "  - {name: s1, serial: {port: /dev/ttyUSB0}}\n"
        "  - {name: s1, serial: {port: /dev/ttyUSB1}}\n",
        encoding="utf-8",
    )
    with pytest.raises(ConfigError, match="'s1' appears more than once"):
        load_board_config(path)
