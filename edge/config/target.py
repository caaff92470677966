"""Where a config goes: a local board directory, or a board reached over SSH.

Over SSH the laptop validates first (an invalid config never leaves it), then copies the file
and its signature to a private staging directory on the board and runs the board's own
`wolfpack config flash` there: the signature policy is the board's, checked with the board's
trusted keys, and the atomic write happens on the board's own filesystem.
"""

from __future__ import annotations

import json
import shlex
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

DEFAULT_REMOTE_DIR = "/etc/wolfpack"


class TargetError(Exception):
    """The target cannot be reached or refused the operation; the message says which."""


@dataclass(frozen=True)
class SshTarget:
    user: str | None
    host: str
    port: int
    path: str
    ssh_options: tuple[str, ...] = field(default=())
    remote_wolfpack: str = "wolfpack"
    timeout_s: float = 60.0

    @property
    def display(self) -> str:
        user = f"{self.user}@" if self.user else ""
        return f"ssh://{user}{self.host}:{self.port}{self.path}"

    def ssh(self, remote_command: list[str], stdin: bytes | None = None) -> tuple[int, str, str]:
        """Run one command on the board; return (exit status, stdout, stderr)."""
        destination = f"{self.user}@{self.host}" if self.user else self.host
        argv = [
            "ssh",
            "-p",
            str(self.port),
            "-o",
            "BatchMode=yes",
            "-o",
            "ConnectTimeout=10",
            *self.ssh_options,
            destination,
            "--",
            shlex.join(remote_command),
        ]
        try:
            proc = subprocess.run(
                argv, input=stdin or b"", capture_output=True, timeout=self.timeout_s, check=False
            )
        except FileNotFoundError:
            raise TargetError(
                "the 'ssh' client is not installed (apt install openssh-client)"
            ) from None
        except subprocess.TimeoutExpired:
            raise TargetError(f"{self.display}: no answer within {self.timeout_s:.0f} s") from None
        out, err = proc.stdout.decode("utf-8", "replace"), proc.stderr.decode("utf-8", "replace")
        if proc.returncode == 255:  # ssh's own failure: connection, auth, host key
            raise TargetError(f"{self.display}: ssh failed: {err.strip() or 'no detail'}")
        return proc.returncode, out, err

    def wolfpack(self, args: list[str], stdin: bytes | None = None) -> tuple[int, str, str]:
        code, out, err = self.ssh([self.remote_wolfpack, *args], stdin)
        if code == 127:
            raise TargetError(
                f"{self.display}: '{self.remote_wolfpack}' is not installed on the board "
                "(set --remote-wolfpack to its path)"
            )
        return code, out, err

    def flash(
        self,
        config: Path,
        signature: Path | None,
        author: str,
        health_deadline_s: float | None = None,
    ) -> dict[str, object]:
        """Stage the files on the board, run its flash, clean up; return its JSON result."""
        code, out, err = self.ssh(["mktemp", "-d", "/tmp/wolfpack-flash.XXXXXX"])
        if code != 0:
            raise TargetError(f"{self.display}: cannot create a staging directory: {err.strip()}")
        staging = out.strip()
        try:
            staged = f"{staging}/{config.name}"
            self._upload(config.read_bytes(), staged)
            if signature is not None:
                self._upload(signature.read_bytes(), staged + ".sig")
            cmd = ["config", "flash", staged, "--to", self.path, "--author", author, "--json"]
            if health_deadline_s is not None:
                cmd += ["--health-deadline", f"{health_deadline_s:g}"]
            code, out, err = self.wolfpack(cmd)
        finally:
            self.ssh(["rm", "-rf", staging])
        try:
            result = json.loads(out.strip().splitlines()[-1])
        except (IndexError, json.JSONDecodeError):
            raise TargetError(
                f"{self.display}: unexpected answer from the board's wolfpack (exit {code}): "
                f"{(err or out).strip()[:500]}"
            ) from None
        return result

    def _upload(self, data: bytes, remote_path: str) -> None:
        code, _, err = self.ssh(["sh", "-c", f"umask 077 && cat > {shlex.quote(remote_path)}"],
                                stdin=data)  # fmt: skip
        if code != 0:
            raise TargetError(f"{self.display}: cannot copy to {remote_path}: {err.strip()}")


def parse_target(text: str) -> Path | SshTarget:
    """``/etc/wolfpack`` or ``ssh://user@host[:port][/path]`` (path default /etc/wolfpack)."""
    if not text.startswith("ssh://"):
        if "://" in text:
            raise TargetError(f"{text}: unsupported target; expected a directory or ssh://...")
        return Path(text)
    parts = urlsplit(text)
    if not parts.hostname:
        raise TargetError(f"{text}: no host; expected ssh://user@host[:port][/path]")
    try:
        port = parts.port or 22
    except ValueError:
        raise TargetError(f"{text}: the port must be a number 1-65535") from None
    return SshTarget(
        user=parts.username,
        host=parts.hostname,
        port=port,
        path=parts.path or DEFAULT_REMOTE_DIR,
    )
