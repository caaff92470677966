"""Flashing over SSH, against a real OpenSSH server on loopback with throwaway keys."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from edge.cli.main import main
from edge.config.store import ConfigStore

SSHD = shutil.which("sshd") or "/usr/sbin/sshd"
WOLFPACK = str(Path(sys.executable).with_name("wolfpack"))
CONFIG = "node:\n  id: cell-07\n  site: dc-berlin\nmcus:\n  - name: main\n    port: /dev/ttyACM0\n"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def sshd(tmp_path: Path) -> Iterator[dict[str, object]]:
    """A real sshd on 127.0.0.1 that accepts one throwaway key for the current user."""
    if not os.path.exists(SSHD):
        pytest.fail("openssh-server is required (scripts/system-deps.sh installs it)")
    d = tmp_path / "sshd"
    d.mkdir()
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(d / "host")],
                   check=True)  # fmt: skip
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(d / "client")],
                   check=True)  # fmt: skip
    (d / "authorized_keys").write_text((d / "client.pub").read_text())
    port = _free_port()
    (d / "sshd_config").write_text(
        f"Port {port}\nListenAddress 127.0.0.1\nHostKey {d / 'host'}\nPidFile {d / 'sshd.pid'}\n"
        f"AuthorizedKeysFile {d / 'authorized_keys'}\nPasswordAuthentication no\n"
        "KbdInteractiveAuthentication no\nUsePAM no\nStrictModes no\n"
        "PermitRootLogin prohibit-password\nLogLevel ERROR\n"
    )
    host_key = (d / "host.pub").read_text().split()[:2]
    (d / "known_hosts").write_text(f"[127.0.0.1]:{port} {' '.join(host_key)}\n")
    if os.geteuid() == 0:
        os.makedirs("/run/sshd", exist_ok=True)  # privilege separation directory
    proc = subprocess.Popen([SSHD, "-D", "-e", "-f", str(d / "sshd_config")],
                            stderr=subprocess.PIPE)  # fmt: skip
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                break
        assert proc.poll() is None, proc.stderr.read().decode()
        time.sleep(0.05)
    user = (
        os.environ.get("USER")
        or subprocess.run(["id", "-un"], capture_output=True, text=True, check=True).stdout.strip()
    )
    ssh_args = [
        "--ssh-key", str(d / "client"),
        "--ssh-option", f"UserKnownHostsFile={d / 'known_hosts'}",
        "--ssh-option", "StrictHostKeyChecking=yes",
        "--remote-wolfpack", WOLFPACK,
    ]  # fmt: skip
    yield {"port": port, "user": user, "args": ssh_args}
    proc.terminate()
    proc.wait(timeout=10)


def test_flash_show_diff_rollback_over_ssh(sshd, tmp_path: Path, capsys):
    board = tmp_path / "board"
    url = f"ssh://{sshd['user']}@127.0.0.1:{sshd['port']}{board}"
    a, b = tmp_path / "a.yaml", tmp_path / "b.yaml"
    a.write_text(CONFIG)
    b.write_text(CONFIG + "    watchdog_ms: 300\n")
    assert main(["config", "flash", str(a), "--to", url, *sshd["args"]]) == 0
    assert main(["config", "flash", str(b), "--to", url, "--json", *sshd["args"]]) == 0
    result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert result["ok"] and result["version"] == 2 and result["node"] == "cell-07"
    assert ConfigStore(board).active().content == b.read_bytes()  # written on the "board"

    assert main(["config", "diff", str(a), "--to", url, *sshd["args"]]) == 1
    assert "-    watchdog_ms: 300" in capsys.readouterr().out
    assert main(["config", "rollback", "--to", url, *sshd["args"]]) == 0
    assert ConfigStore(board).active().content == a.read_bytes()
    assert main(["config", "show", "--to", url, "--json", *sshd["args"]]) == 0
    shown = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert shown["active"]["version"] == 1
    assert [h["event"] for h in shown["history"]] == ["flash", "flash", "rollback"]


def test_board_signature_policy_applies_over_ssh(sshd, tmp_path: Path, capsys):
    board = tmp_path / "board"
    key = tmp_path / "alice.key"
    assert main(["config", "keygen", "--out", str(key)]) == 0
    assert main(["config", "trust", str(key.with_suffix(".pub")), "--to", str(board)]) == 0
    cfg = tmp_path / "cell.yaml"
    cfg.write_text(CONFIG)
    url = f"ssh://{sshd['user']}@127.0.0.1:{sshd['port']}{board}"
    capsys.readouterr()
    assert main(["config", "flash", str(cfg), "--to", url, *sshd["args"]]) == 1
    assert "unsigned, and this board accepts only" in capsys.readouterr().err
    assert main(["config", "sign", str(cfg), "--key", str(key)]) == 0
    assert main(["config", "flash", str(cfg), "--to", url, *sshd["args"]]) == 0
    assert ConfigStore(board).active().stamp.signed_by is not None


def test_invalid_config_never_leaves_the_laptop(sshd, tmp_path: Path, capsys):
    board = tmp_path / "board"
    cfg = tmp_path / "cell.yaml"
    cfg.write_text(CONFIG.replace("site:", "stie:"))
    url = f"ssh://{sshd['user']}@127.0.0.1:{sshd['port']}{board}"
    assert main(["config", "flash", str(cfg), "--to", url, *sshd["args"]]) == 1
    assert "did you mean 'site'" in capsys.readouterr().err
    assert not board.exists()


def test_unreachable_board_says_so(tmp_path: Path, capsys):
    cfg = tmp_path / "cell.yaml"
    cfg.write_text(CONFIG)
    url = f"ssh://nobody@127.0.0.1:{_free_port()}/etc/wolfpack"
    assert main(["config", "flash", str(cfg), "--to", url]) == 1
    err = capsys.readouterr().err
    assert "target unreachable, nothing written" in err and "ssh failed" in err


def test_health_check_and_rollback_over_ssh(sshd, tmp_path: Path, capsys):
    from tests.edge.node.test_config_procs import (
        cell_config,
        start_node,
        start_sim_mcu,
        stop,
        wait_health,
    )

    board = tmp_path / "board"
    url = f"ssh://{sshd['user']}@127.0.0.1:{sshd['port']}{board}"
    first, bad = tmp_path / "first.yaml", tmp_path / "bad.yaml"
    mcu = start_sim_mcu(tmp_path / "mcu")
    node = None
    try:
        first.write_text(cell_config(tmp_path / "mcu"))
        bad.write_text(cell_config(tmp_path / "no-such-port", description="broken"))
        assert main(["config", "flash", str(first), "--to", url, *sshd["args"]]) == 0
        node = start_node(board, tmp_path / "node.log")
        wait_health(board, "1")
        capsys.readouterr()
        code = main(
            ["config", "flash", str(bad), "--to", url, "--health-deadline", "4", *sshd["args"]]
        )
        err = capsys.readouterr().err
        assert code == 1
        assert "ROLLED BACK: version 2" in err and "devices missing: mcu" in err
        assert "healthy again on version 1" in err
        assert ConfigStore(board).active().stamp.version == 1
    finally:
        stop(node)
        stop(mcu)
