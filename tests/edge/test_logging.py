"""Log lines name the node, in text and in JSON lines."""

from __future__ import annotations

import io
import json
import logging

from edge.logsetup import setup_logging


def test_text_lines_carry_node_id():
    buf = io.StringIO()
    setup_logging(node="cell-07", stream=buf)
    logging.getLogger("firmware_bridge.link").warning("link down", extra={"port": "/dev/x"})
    line = buf.getvalue().strip()
    assert "[cell-07]" in line and "firmware_bridge.link: link down" in line
    assert "port=/dev/x" in line


def test_json_lines_carry_node_id_and_extras():
    buf = io.StringIO()
    setup_logging(node="cell-07", json_lines=True, stream=buf)
    logging.getLogger("edge").info("ready", extra={"mcus": 1})
    rec = json.loads(buf.getvalue().strip())
    assert rec["node"] == "cell-07" and rec["msg"] == "ready" and rec["mcus"] == 1
    assert rec["level"] == "info" and rec["ts"].endswith("Z")
