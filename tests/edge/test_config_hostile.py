"""Hostile configs and hostile stores (issue 13, findings 5 and 9).

Each test reproduces one finding: a billion-laughs YAML, oversized and non-UTF-8 files, a
config signed for another node or replayed at an older version, a trust policy that cannot be
read, eight flashes at once on one store, symlink loops under every command, keys written
under umask 000. Real files, real processes, no mocks.
"""

from __future__ import annotations

import json
import os
import resource
import stat
import subprocess
import sys
import time
import tracemalloc
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from edge.cli.linedev_cmd import parse_escapes
from edge.cli.main import main
from edge.config import BoardConfig, ConfigError
from edge.config.flash import flash_local
from edge.config.limits import MAX_CONFIG_BYTES
from edge.config.loader import parse_config_bytes
from edge.config.signing import (
    Signature,
    SignatureError,
    generate_keypair,
    load_private_key,
    sign,
)
from edge.config.store import ConfigStore, StoreError

REPO = Path(__file__).resolve().parents[2]

CONFIG = "node:\n  id: {node}\n  site: dc-berlin\nmcus:\n  - name: main\n    port: /dev/ttyACM0\n"

BILLION_LAUGHS = "node: {id: cell-07, site: s}\n" + "".join(
    f"l{n}: &l{n} [{', '.join([f'*l{n - 1}'] * 9) if n else ', '.join(['lol'] * 9)}]\n"
    for n in range(10)
)


def _write(path: Path, node: str = "cell-07", extra: str = "") -> Path:
    path.write_text(CONFIG.format(node=node) + extra)
    return path


def _wolfpack(
    *args: str, umask: int | None = None, timeout: float = 60
) -> subprocess.CompletedProcess:
    def child() -> None:
        if umask is not None:
            os.umask(umask)

    return subprocess.run(
        [sys.executable, "-m", "edge.cli.main", *args],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=timeout,
        preexec_fn=child,
    )


def _signed(
    tmp_path: Path, key: Path, name: str, node: str, version: int, body_node: str = ""
) -> Path:
    """A config file and its .sig, signed for ``node`` as ``version``."""
    cfg = _write(tmp_path / name, body_node or node, extra=f"# v{version}\n")
    sig = sign(cfg.read_bytes(), load_private_key(key), "tech", node, version)
    cfg.with_name(cfg.name + ".sig").write_text(sig.to_json())
    return cfg


@pytest.fixture
def trusted(tmp_path: Path) -> tuple[Path, Path]:
    """(board directory that trusts one key, that private key)."""
    board = tmp_path / "board"
    key = tmp_path / "keys" / "tech.key"
    public, _ = generate_keypair(key, "tech")
    assert main(["config", "trust", str(public), "--to", str(board)]) == 0
    return board, key


# ---- finding 5: parsing is bounded, and comes after size and signature ------------------------


def test_billion_laughs_is_refused_at_once_with_bounded_memory(tmp_path: Path):
    """Was: `config validate` ran past 90 s at 2.7 GB. Now: refused at its first alias."""
    content = BILLION_LAUGHS.encode()
    tracemalloc.start()
    t0 = time.perf_counter()
    with pytest.raises(ConfigError, match=r"YAML aliases \(\*l0\) are not allowed"):
        parse_config_bytes(content, "laughs.yaml", BoardConfig)
    elapsed = time.perf_counter() - t0
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert elapsed < 0.5 and peak < 20 * 2**20, (elapsed, peak)

    path = tmp_path / "laughs.yaml"
    path.write_bytes(content)

    def limit_memory() -> None:  # the old behaviour would die here instead of hanging
        resource.setrlimit(resource.RLIMIT_AS, (1 << 30, 1 << 30))

    t0 = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, "-m", "edge.cli.main", "config", "validate", str(path)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=30,
        preexec_fn=limit_memory,
    )
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    assert f"{path}:3:" in proc.stderr and "aliases" in proc.stderr
    assert time.perf_counter() - t0 < 10  # interpreter start included, on a loaded machine


def test_oversized_deep_and_numerous_documents_are_refused(tmp_path: Path):
    big = b"node: {id: a, site: b}\n" + b"# padding\n" * (MAX_CONFIG_BYTES // 10 + 1)
    with pytest.raises(
        ConfigError, match=rf"{len(big)} bytes is over the limit of {MAX_CONFIG_BYTES}"
    ):
        parse_config_bytes(big, "big.yaml", BoardConfig)
    path = tmp_path / "big.yaml"
    path.write_bytes(big)
    t0 = time.perf_counter()
    with pytest.raises(ConfigError, match="over the limit"):
        flash_local(path, tmp_path / "board", "x")
    assert time.perf_counter() - t0 < 0.5
    assert not (tmp_path / "board").exists()

    deep = b"node: {id: a, site: b}\nx: " + b"[" * 5000 + b"]" * 5000 + b"\n"
    with pytest.raises(ConfigError, match="nested deeper than 32 levels"):
        parse_config_bytes(deep, "deep.yaml", BoardConfig)
    many = b"node: {id: a, site: b}\nx: [" + b"1," * 20000 + b"1]\n"
    with pytest.raises(ConfigError, match="more than 10000 YAML nodes"):
        parse_config_bytes(many, "many.yaml", BoardConfig)


def test_special_files_are_refused_without_reading_them(tmp_path: Path):
    fifo = tmp_path / "fifo.yaml"
    os.mkfifo(fifo)
    for path in (fifo, Path("/dev/zero")):
        with pytest.raises(ConfigError, match="not a regular file"):
            flash_local(path, tmp_path / "board", "x")
    proc = _wolfpack("config", "validate", "/dev/zero", timeout=20)
    assert proc.returncode == 1 and "not a regular file" in proc.stderr


def test_non_utf8_is_refused_at_flash_as_at_validate_with_the_byte_offset(tmp_path: Path):
    path = tmp_path / "latin1.yaml"
    path.write_bytes(CONFIG.format(node="cell-07").encode() + b"# caf\xe9\n")
    offset = len(CONFIG.format(node="cell-07")) + 5
    with pytest.raises(ConfigError, match=rf"not UTF-8: byte offset {offset} \(0xe9\)"):
        flash_local(path, tmp_path / "board", "x")
    assert not (tmp_path / "board").exists()
    proc = _wolfpack("config", "validate", str(path))
    assert proc.returncode == 1 and f"byte offset {offset}" in proc.stderr


def test_an_unsigned_bomb_is_refused_by_the_policy_before_it_is_parsed(trusted, tmp_path: Path):
    board, _ = trusted
    path = tmp_path / "laughs.yaml"
    path.write_text(BILLION_LAUGHS)
    t0 = time.perf_counter()
    with pytest.raises(SignatureError, match="unsigned, and this board accepts only"):
        flash_local(path, board, "x")
    assert time.perf_counter() - t0 < 0.5


# ---- finding 5: node id and version are bound by the signature ---------------------------------


def test_a_config_signed_for_another_node_is_refused(trusted, tmp_path: Path):
    board, key = trusted
    flash_local(_signed(tmp_path, key, "mine.yaml", "cell-07", 1), board, "x")
    other = _signed(tmp_path, key, "other.yaml", "cell-99", 2)
    with pytest.raises(SignatureError, match="signed for node cell-99, this node is cell-07"):
        flash_local(other, board, "x")
    # signed for this node, but the file names another: the binding is to the file too
    liar = _signed(tmp_path, key, "liar.yaml", "cell-07", 3, body_node="cell-99")
    with pytest.raises(SignatureError, match=r"signed for node cell-07, but the file.s node\.id"):
        flash_local(liar, board, "x")
    assert ConfigStore(board).active().stamp.version == 1


def test_replay_and_downgrade_are_refused_and_rollback_stays_local(trusted, tmp_path: Path):
    board, key = trusted
    store = ConfigStore(board)
    v3 = _signed(tmp_path, key, "v3.yaml", "cell-07", 3)
    v5 = _signed(tmp_path, key, "v5.yaml", "cell-07", 5)
    flash_local(v3, board, "x")
    flash_local(v5, board, "x")
    with pytest.raises(SignatureError, match="signed version 3 is not newer than version 5"):
        flash_local(v3, board, "x")
    with pytest.raises(SignatureError, match="signed version 5 is not newer than version 5"):
        flash_local(v5, board, "x")
    assert store.rollback().signed_version == 3  # local, explicit: allowed
    assert store.active().stamp.signed_version == 3
    with pytest.raises(SignatureError, match="not newer than version 5"):
        flash_local(v5, board, "x")  # the rollback does not re-open the door to replays
    # the high-water mark survives pruning of every version that carried it
    for version in range(6, 13):
        flash_local(_signed(tmp_path, key, f"v{version}.yaml", "cell-07", version), board, "x")
    (board / "signed_version.json").unlink()  # even a lost high-water file: kept stamps
    with pytest.raises(SignatureError, match="not newer than version 12"):
        flash_local(v5, board, "x")


def test_old_signature_format_is_refused_with_what_to_do(trusted, tmp_path: Path):
    board, _ = trusted
    cfg = _write(tmp_path / "cell.yaml")
    old = {
        "format": "wolfpack-config-signature/1",
        "algorithm": "ed25519",
        "key_id": "x",
        "sha256": "0" * 64,
        "signature": "",
    }
    cfg.with_name("cell.yaml.sig").write_text(json.dumps(old))
    with pytest.raises(SignatureError, match="no longer accepted; sign the file again"):
        flash_local(cfg, board, "x")


def test_sign_cli_binds_node_and_version(tmp_path: Path, capsys):
    key = tmp_path / "k.key"
    generate_keypair(key, "tech")
    cfg = _write(tmp_path / "cell.yaml")
    assert main(["config", "sign", str(cfg), "--key", str(key), "--version", "7"]) == 0
    sig = Signature.from_json(cfg.with_name("cell.yaml.sig").read_text(), "sig")
    assert (sig.manifest.node, sig.manifest.version) == ("cell-07", 7)
    assert main(["config", "sign", str(cfg), "--key", str(key)]) == 0  # default: later
    assert Signature.from_json(cfg.with_name("cell.yaml.sig").read_text(), "s").manifest.version > 7
    capsys.readouterr()
    assert main(["config", "sign", str(cfg), "--key", str(key), "--node", "cell-99"]) == 1
    assert "its node.id is cell-07, not cell-99" in capsys.readouterr().err


# ---- finding 5: the policy fails closed ----------------------------------------------------------


@pytest.mark.parametrize("damage", ["dangling", "loop", "file", "bad-key", "dangling-key"])
def test_an_unreadable_trust_policy_refuses_every_config(tmp_path: Path, damage: str):
    board = tmp_path / "board"
    flash_local(_write(tmp_path / "first.yaml"), board, "x")
    keys = board / "trusted_keys"
    if damage == "dangling":
        keys.symlink_to(tmp_path / "nowhere")
    elif damage == "loop":
        keys.symlink_to(keys)
    elif damage == "file":
        keys.write_text("not a directory")
    else:
        keys.mkdir()
        if damage == "bad-key":
            (keys / "x.pub").write_text("-----BEGIN PUBLIC KEY-----\ngarbage\n")
        else:
            (keys / "x.pub").symlink_to(tmp_path / "gone.pub")
    cfg = _write(tmp_path / "second.yaml", extra="# unsigned\n")
    with pytest.raises(SignatureError, match=r"the trust policy cannot be read .*fail closed"):
        flash_local(cfg, board, "x")
    assert ConfigStore(board).active().stamp.version == 1
    # the node will not start on it either, and says why in one line
    proc = _wolfpack("run", "--config-dir", str(board), timeout=30)
    assert proc.returncode == 1 and "Traceback" not in proc.stdout + proc.stderr
    assert "trust policy cannot be read" in proc.stdout


def test_the_node_refuses_to_start_on_an_unsigned_active_config_once_keys_are_trusted(
    tmp_path: Path,
):
    board = tmp_path / "board"
    flash_local(_write(tmp_path / "first.yaml"), board, "x")
    public, _ = generate_keypair(tmp_path / "k.key", "tech")
    assert main(["config", "trust", str(public), "--to", str(board)]) == 0
    proc = _wolfpack("run", "--config-dir", str(board), timeout=30)
    assert proc.returncode == 1
    assert "refused by the signature policy" in proc.stdout and "unsigned" in proc.stdout


# ---- finding 5: one writer at a time ----------------------------------------------------------


def test_eight_concurrent_flashes_leave_complete_versions(tmp_path: Path, trusted):
    """Was: last_good pointed at an empty version. Now every flash queues on the store lock."""
    board = tmp_path / "plain"
    files = [_write(tmp_path / f"c{i}.yaml", extra=f"# flash {i}\n") for i in range(8)]
    procs = [
        subprocess.Popen(
            [sys.executable, "-m", "edge.cli.main", "config", "flash", str(f), "--to", str(board)],
            cwd=REPO,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        for f in files
    ]
    codes = [p.wait(timeout=120) for p in procs]
    assert codes == [0] * 8, [p.stderr.read() for p in procs if p.stderr]
    store = ConfigStore(board)
    active, last_good = store.active(), store.last_good()  # raise if damaged
    assert active is not None and last_good is not None
    assert active.stamp.version == 8 and last_good.stamp.version == 7
    kept = sorted(p.name for p in store.versions.iterdir())
    assert kept == [f"{n:06d}" for n in range(4, 9)]
    for name in kept:
        version = store.version(int(name))  # complete: stamp and content agree
        assert version.content in {f.read_bytes() for f in files}
    assert [e["version"] for e in store.history()] == list(range(1, 9))

    # the same signed file flashed 4 times at once: exactly one is accepted
    signed_board, key = trusted
    cfg = _signed(tmp_path, key, "signed.yaml", "cell-07", 40)
    procs = [
        subprocess.Popen(
            [
                sys.executable,
                "-m",
                "edge.cli.main",
                "config",
                "flash",
                str(cfg),
                "--to",
                str(signed_board),
            ],
            cwd=REPO,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(4)
    ]
    results = [(p.wait(timeout=120), p.stderr.read()) for p in procs]
    assert sorted(code for code, _ in results) == [0, 1, 1, 1], results
    assert all("not newer than version 40" in err for code, err in results if code)
    assert ConfigStore(signed_board).active().stamp.signed_version == 40


# ---- finding 9: no traceback on any CLI input --------------------------------------------------


def _loop_store(tmp_path: Path, where: str) -> Path:
    board = tmp_path / f"board-{where}"
    if where == "root":
        board.symlink_to(board)
        return board
    flash_local(_write(tmp_path / "a.yaml"), board, "x")
    flash_local(_write(tmp_path / "b.yaml", extra="# b\n"), board, "x")
    target = board / where
    if target.is_symlink() or target.is_file():
        target.unlink()
    elif target.is_dir():
        os.rename(target, board / f"{where}.moved")
    target.symlink_to(target)
    return board


@pytest.mark.parametrize("where", ["root", "active", "versions", "history.jsonl", "trusted_keys"])
def test_symlink_loops_in_a_store_give_one_line_errors(tmp_path: Path, where: str, capsys):
    """Was: tracebacks from trust, show, rollback and run --config-dir."""
    board = _loop_store(tmp_path, where)
    public, _ = generate_keypair(tmp_path / "k.key", "tech")
    cfg = _write(tmp_path / "c.yaml", extra="# c\n")
    commands = {  # in-process: an uncaught exception would fail the test as a traceback would
        "show": ["config", "show", "--to", str(board)],
        "rollback": ["config", "rollback", "--to", str(board)],
        "diff": ["config", "diff", str(cfg), "--to", str(board)],
        "flash": ["config", "flash", str(cfg), "--to", str(board), "--health-deadline", "1"],
        "trust": ["config", "trust", str(public), "--to", str(board)],  # last: it sets a policy
    }
    failed = 0
    for name, argv in commands.items():
        code = main(argv)
        out, err = capsys.readouterr()
        if code == 0 or (name == "diff" and code == 1 and not err):  # diff: 1 = differs
            continue  # the loop is somewhere this command does not need (e.g. history)
        failed += 1
        assert code in (1, 2), (name, code, out, err)
        assert any(
            why in err for why in ("symbolic links", "not a directory", "not a version directory")
        ), (name, err)
    assert failed >= 1
    proc = _wolfpack("run", "--config-dir", str(board), timeout=30)
    output = proc.stdout + proc.stderr
    assert proc.returncode == 1 and "Traceback" not in output, output
    assert len([line for line in output.splitlines() if line.startswith("error:")]) == 1, output


def test_a_bad_trigger_escape_is_one_line_and_exit_2(capsys):
    """Was: `linedev listen --trigger 'abc\\'` ended in a UnicodeDecodeError traceback."""
    for bad, why in (("abc\\", "a lone backslash at the end"), ("\\xZ1", "two hex digits")):
        with pytest.raises(SystemExit) as exited:
            main(["linedev", "listen", "--port", "/nonexistent", "--trigger", bad])
        assert exited.value.code == 2
        err = capsys.readouterr().err
        assert why in err and len(err.strip().splitlines()) == 1, err
    with pytest.raises(SystemExit) as exited:  # argparse: a usage error, one line
        main(["config", "flash", "x.yaml", "--to", "/tmp/b", "--health-deadline", "nan"])
    assert exited.value.code == 2


def test_keys_and_store_ignore_a_permissive_umask(tmp_path: Path):
    keydir = tmp_path / "new" / "keys"
    assert _wolfpack("config", "keygen", "--out", str(keydir / "a.key"), umask=0).returncode == 0
    board = tmp_path / "board"
    trust = _wolfpack("config", "trust", str(keydir / "a.pub"), "--to", str(board), umask=0)
    assert trust.returncode == 0, trust.stderr
    cfg = _write(tmp_path / "c.yaml")
    assert (
        _wolfpack("config", "sign", str(cfg), "--key", str(keydir / "a.key"), umask=0).returncode
        == 0
    )
    assert _wolfpack("config", "flash", str(cfg), "--to", str(board), umask=0).returncode == 0

    def mode(path: Path) -> int:
        return stat.S_IMODE(path.lstat().st_mode)

    assert mode(keydir) == 0o700 and mode(keydir.parent) == 0o700
    assert mode(keydir / "a.key") == 0o600 and mode(keydir / "a.pub") == 0o644
    keys = board / "trusted_keys"
    assert mode(keys) == 0o700 and {mode(p) for p in keys.iterdir()} == {0o644}
    assert mode(board) == 0o750 and mode(board / "versions") == 0o750
    version = ConfigStore(board).active().path
    assert mode(version) == 0o750
    assert {mode(p) for p in version.iterdir()} == {0o640}
    assert mode(board / "history.jsonl") == 0o640


def test_store_errors_are_store_errors(tmp_path: Path):
    board = tmp_path / "board"
    board.mkdir()
    (board / "active").write_text("not a link")
    with pytest.raises(StoreError, match="not a symlink to a version"):
        ConfigStore(board).active()
    (board / "active").unlink()
    (board / "active").symlink_to("../../etc")
    with pytest.raises(StoreError, match="not a version directory"):
        ConfigStore(board).active()


# ---- properties: the decoders never raise anything but their documented error ----------------


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=400))
def test_arbitrary_bytes_raise_only_config_error(data: bytes):
    try:
        parse_config_bytes(data, "fuzz.yaml", BoardConfig)
    except ConfigError:
        pass


_YAMLISH = st.lists(
    st.sampled_from(
        [
            "node:",
            " id:",
            " site:",
            "mcus:",
            "- ",
            "&a ",
            "*a",
            "<<: ",
            "[",
            "]",
            "{",
            "}",
            ",",
            ": ",
            "\n",
            "  ",
            "'",
            '"',
            "!!python/object ",
            "!!binary ",
            "? ",
            "#",
            "9" * 40,
            "x",
            "1e400",
            "~",
            "---\n",
            "...\n",
            "\t",
            "\\",
            "%YAML 1.2\n",
            "cell:",
            "port: ",
        ]
    ),
    max_size=40,
).map("".join)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_YAMLISH)
def test_yaml_like_text_raises_only_config_error(text: str):
    try:
        parse_config_bytes(text.encode(), "fuzz.yaml", BoardConfig)
    except ConfigError:
        pass


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=300))
def test_arbitrary_signature_files_raise_only_signature_error(text: str):
    try:
        Signature.from_json(text, "fuzz.sig")
    except SignatureError:
        pass


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=60))
def test_trigger_escapes_round_trip_or_refuse(text: str):
    try:
        parse_escapes(text)
    except ValueError:
        pass
    escaped = "".join(f"\\x{ord(c):02x}" if ord(c) < 256 and not c.isalnum() else c for c in text)
    assert parse_escapes(escaped) == text
