"""Flashing configs: atomic A/B store, signatures, refusals before writing, rollback."""

from __future__ import annotations

import json
import os
import random
import signal
import time
from pathlib import Path

import pytest

from edge.cli.main import main
from edge.config import BoardConfig, ConfigError, parse_config_text
from edge.config.flash import flash_local
from edge.config.signing import SignatureError
from edge.config.store import ConfigStore, StoreError

CONFIG = """\
node:
  id: cell-07
  site: dc-berlin
mcus:
  - name: main
    port: /dev/ttyACM0
    watchdog_ms: {watchdog}
"""


def _write(path: Path, watchdog: int = 500) -> Path:
    path.write_text(CONFIG.format(watchdog=watchdog))
    return path


def test_flash_stamps_versions_and_keeps_last_good(tmp_path: Path):
    board = tmp_path / "board"
    first = flash_local(_write(tmp_path / "a.yaml", 500), board, "alice").stamp
    second = flash_local(_write(tmp_path / "b.yaml", 400), board, "bob").stamp
    store = ConfigStore(board)
    assert (first.version, second.version) == (1, 2)
    assert store.active().stamp == second and store.last_good().stamp == first
    assert b"watchdog_ms: 400" in store.active().content
    assert [e["event"] for e in store.history()] == ["flash", "flash"]


def test_invalid_config_is_refused_before_anything_is_written(tmp_path: Path):
    board = tmp_path / "board"
    bad = tmp_path / "bad.yaml"
    bad.write_text(CONFIG.format(watchdog=500).replace("site:", "stie:"))
    with pytest.raises(ConfigError, match="did you mean 'site'"):
        flash_local(bad, board, "alice")
    assert not board.exists()


def test_rollback_returns_to_last_good_and_is_recorded(tmp_path: Path):
    board = tmp_path / "board"
    flash_local(_write(tmp_path / "a.yaml", 500), board, "alice")
    flash_local(_write(tmp_path / "b.yaml", 400), board, "alice")
    store = ConfigStore(board)
    assert store.rollback(reason="node unhealthy").version == 1
    assert b"watchdog_ms: 500" in store.active().content
    assert store.history()[-1] == {
        **store.history()[-1],
        "event": "rollback",
        "version": 1,
        "from_version": 2,
        "reason": "node unhealthy",
    }
    with pytest.raises(StoreError, match="already active"):
        store.rollback()
    with pytest.raises(StoreError, match="no version 9"):
        store.rollback(to_version=9)


def test_old_versions_are_pruned_but_pointers_kept(tmp_path: Path):
    board = tmp_path / "board"
    for watchdog in range(100, 900, 100):
        flash_local(_write(tmp_path / "c.yaml", watchdog), board, "alice")
    kept = sorted(p.name for p in (board / "versions").iterdir())
    assert kept == ["000004", "000005", "000006", "000007", "000008"]


def _keys(tmp_path: Path, name: str) -> tuple[Path, Path]:
    key = tmp_path / "keys" / f"{name}.key"
    assert main(["config", "keygen", "--out", str(key), "--signer", name]) == 0
    return key, key.with_suffix(".pub")


def test_signature_policy_unsigned_untrusted_tampered_each_say_which(tmp_path: Path):
    board = tmp_path / "board"
    trusted_key, trusted_pub = _keys(tmp_path, "alice")
    other_key, _ = _keys(tmp_path, "mallory")
    assert main(["config", "trust", str(trusted_pub), "--to", str(board)]) == 0
    cfg = _write(tmp_path / "cell.yaml")

    with pytest.raises(SignatureError, match="unsigned, and this board accepts only"):
        flash_local(cfg, board, "x")
    assert main(["config", "sign", str(cfg), "--key", str(other_key)]) == 0
    with pytest.raises(SignatureError, match="which this board does not trust"):
        flash_local(cfg, board, "x")
    assert main(["config", "sign", str(cfg), "--key", str(trusted_key)]) == 0
    stamp = flash_local(cfg, board, "x").stamp
    assert stamp.signed_by is not None
    cfg.write_text(cfg.read_text().replace("500", "50"))
    with pytest.raises(SignatureError, match=r"tampered: .* content changed after signing"):
        flash_local(cfg, board, "x")
    sig = cfg.with_name("cell.yaml.sig")
    sig.write_text("{not json")
    with pytest.raises(SignatureError, match="not a readable signature file"):
        flash_local(cfg, board, "x")
    assert ConfigStore(board).active().stamp == stamp  # every refusal wrote nothing


def test_keygen_refuses_to_overwrite_a_key(tmp_path: Path):
    key, _ = _keys(tmp_path, "alice")
    assert oct(key.stat().st_mode & 0o777) == "0o600"
    assert main(["config", "keygen", "--out", str(key)]) == 1


def test_cli_show_diff_rollback(tmp_path: Path, capsys):
    board = tmp_path / "board"
    a, b = _write(tmp_path / "a.yaml", 500), _write(tmp_path / "b.yaml", 400)
    assert main(["config", "flash", str(a), "--to", str(board)]) == 0
    assert main(["config", "diff", str(b), "--to", str(board)]) == 1
    out = capsys.readouterr().out
    assert "-    watchdog_ms: 500" in out and "+    watchdog_ms: 400" in out
    assert main(["config", "flash", str(b), "--to", str(board), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["version"] == 2
    assert main(["config", "rollback", "--to", str(board)]) == 0
    assert main(["config", "show", "--to", str(board), "--json"]) == 0
    shown = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert shown["active"]["version"] == 1
    assert [h["event"] for h in shown["history"]] == ["flash", "flash", "rollback"]


def test_power_cut_at_random_points_leaves_one_complete_config(tmp_path: Path):
    """>= 200 kill -9s at random instants of a flash: 'active' is always whole, old or new.

    The flashing process is forked (so each trial costs no interpreter start) and flashes in
    a loop; SIGKILL lands at a random instant. kill -9 cannot lose the page cache, so this
    proves the ordering of writes and renames, not the fsyncs.
    """
    board = tmp_path / "board"
    sources = [_write(tmp_path / f"v{w}.yaml", w) for w in (300, 400, 500)]
    contents = {p.read_bytes() for p in sources}
    start = time.perf_counter()
    for src in sources:
        flash_local(src, board, "calibrate")
    one_flash = (time.perf_counter() - start) / len(sources)  # kills spread over ~3 flashes
    rng = random.Random(7)
    outcomes = {"changed": 0, "unchanged": 0, "torn": 0}
    for trial in range(220):
        before = ConfigStore(board).active().stamp.version
        pid = os.fork()
        if pid == 0:  # the flashing process
            try:
                while True:
                    for src in sources:
                        flash_local(src, board, f"trial-{trial}")
            finally:
                os._exit(0)
        time.sleep(rng.uniform(0, 3 * one_flash))
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
        store = ConfigStore(board)
        if any(store.versions.glob(".tmp-*")):
            outcomes["torn"] += 1
        active = store.active()  # raises StoreError if damaged or mixed
        assert active.content in contents
        parse_config_text(active.content.decode(), "active", BoardConfig)
        assert (active.path / "version.json").is_file()
        outcomes["changed" if active.stamp.version != before else "unchanged"] += 1
    # The kills must have landed both before and after switches, and inside writes.
    assert outcomes["changed"] > 10 and outcomes["unchanged"] > 10 and outcomes["torn"] > 5, (
        outcomes
    )
    flash_local(sources[1], board, "after")  # a torn write never blocks the next flash
    assert not any(ConfigStore(board).versions.glob(".tmp-*"))
