"""A RabbitMQ cluster on loopback for tests, ``wolfpack sim fleet`` and bench/fleet.py.

Each member is the Debian ``rabbitmq-server`` run as a child process of ours, with its own node
name, AMQP, MQTT and distribution ports, data and log directories under one work directory, a
shared Erlang cookie, and its own ``epmd`` port, so it never meets a system RabbitMQ and is
stopped by pid (``epmd`` by ``epmd -port P -kill``). Members find each other through
``classic_config`` at first boot. Nothing here touches a system service.

    python -m fleet_link.brain_pool_cluster start /tmp/rmq      # prints the MQTT/AMQP URLs
    python -m fleet_link.brain_pool_cluster stop /tmp/rmq
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

RABBITMQ_BIN = Path(os.environ.get("WOLFPACK_RABBITMQ_BIN", "/usr/lib/rabbitmq/bin"))
EPMD = shutil.which("epmd") or "/usr/bin/epmd"
_TEMPLATE = Path(__file__).resolve().parents[1] / "configs" / "rabbitmq" / "rabbitmq.conf.template"
USER = "wolfpack"
PASSWORD = "wolfpack-lab"  # loopback lab only; a site's users are in docs/fleet-scale.md
_STATE = "cluster.json"


class ClusterError(RuntimeError):
    """The cluster could not be started or reached (the message says which member and why)."""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def port_open(port: int, timeout: float = 0.2) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=timeout):
            return True
    except OSError:
        return False


def available() -> bool:
    """True when the RabbitMQ server (with its MQTT plugin) is installed here."""
    return (RABBITMQ_BIN / "rabbitmq-server").exists()


@dataclass
class Member:
    index: int
    name: str
    amqp: int
    mqtt: int
    dist: int
    pid: int = 0

    @property
    def mqtt_url(self) -> str:
        return f"mqtt://127.0.0.1:{self.mqtt}"

    @property
    def amqp_url(self) -> str:
        return f"amqp://{USER}:{PASSWORD}@127.0.0.1:{self.amqp}/%2F"


class RabbitCluster:
    """``size`` RabbitMQ members under ``workdir``; start, SIGKILL and restart one, stop all."""

    def __init__(self, workdir: Path, size: int = 3, schedulers: int = 1) -> None:
        self.workdir = Path(workdir)
        self.size = size
        self.schedulers = schedulers
        self.epmd_port = free_port()
        tag = secrets.token_hex(3)
        self.members = [
            Member(i, f"wp{tag}{i}@localhost", free_port(), free_port(), free_port())
            for i in range(size)
        ]
        self.procs: dict[int, subprocess.Popen[bytes]] = {}
        self.cookie = secrets.token_hex(16)
        self._peers = ""
        self._stopped = False  # after stop(): a restart still booting in a thread starts nothing

    # urls -----------------------------------------------------------------------------------
    @property
    def mqtt_urls(self) -> list[str]:
        return [m.mqtt_url for m in self.members]

    @property
    def amqp_urls(self) -> list[str]:
        return [m.amqp_url for m in self.members]

    # lifecycle ------------------------------------------------------------------------------
    def _env(self, m: Member) -> dict[str, str]:
        base = self.workdir / f"m{m.index}"
        env = {k: v for k, v in os.environ.items() if not k.startswith("RABBITMQ_")}
        env.update(
            HOME=str(self.workdir),  # .erlang.cookie: shared by the members and rabbitmqctl
            ERL_EPMD_PORT=str(self.epmd_port),
            RABBITMQ_NODENAME=m.name,
            RABBITMQ_NODE_IP_ADDRESS="127.0.0.1",
            RABBITMQ_NODE_PORT=str(m.amqp),
            RABBITMQ_DIST_PORT=str(m.dist),
            RABBITMQ_CONF_ENV_FILE=str(self.workdir / "rabbitmq-env.conf"),
            RABBITMQ_CONFIG_FILE=str(base / "rabbitmq.conf"),
            RABBITMQ_ADVANCED_CONFIG_FILE=str(base / "advanced.config"),
            RABBITMQ_MNESIA_BASE=str(base / "mnesia"),
            RABBITMQ_LOG_BASE=str(base / "log"),
            RABBITMQ_PID_FILE=str(base / "pid"),
            RABBITMQ_FEATURE_FLAGS_FILE=str(base / "feature_flags"),
            RABBITMQ_ENABLED_PLUGINS_FILE=str(self.workdir / "enabled_plugins"),
            RABBITMQ_QUORUM_DIR=str(base / "mnesia" / "quorum"),
            # exec the VM in place of the script: our pid is the broker's (SIGKILL reaches it)
            RUNNING_UNDER_SYSTEMD="true",
            # no busy-waiting schedulers: three members share two cores with the fleet
            RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS=(
                f"+S {self.schedulers}:{self.schedulers} +sbwt none +sbwtdcpu none "
                "+sbwtdio none +A 8"
            ),
        )
        return env

    def _prepare(self) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        cookie = self.workdir / ".erlang.cookie"
        if not cookie.exists():
            cookie.write_text(self.cookie, encoding="ascii")
            cookie.chmod(0o400)
        (self.workdir / "rabbitmq-env.conf").write_text("", encoding="utf-8")
        (self.workdir / "enabled_plugins").write_text(
            "[rabbitmq_mqtt,rabbitmq_consistent_hash_exchange].\n", encoding="ascii"
        )
        peers = "\n".join(
            f"cluster_formation.classic_config.nodes.{m.index + 1} = {m.name}" for m in self.members
        )
        self._peers = peers
        for m in self.members:
            self._write_config(m)

    def _write_config(self, m: Member) -> None:
        base = self.workdir / f"m{m.index}"
        (base / "log").mkdir(parents=True, exist_ok=True)
        text = (
            _TEMPLATE.read_text(encoding="utf-8")
            .replace("@AMQP@", str(m.amqp))
            .replace("@MQTT@", str(m.mqtt))
            .replace("@PEERS@", self._peers)
            .replace("@USER@", USER)
            .replace("@PASS@", PASSWORD)
            .replace("@NAME@", m.name)
        )
        (base / "rabbitmq.conf").write_text(text, encoding="utf-8")

    def _first_start(self, indices: list[int], timeout: float) -> None:
        """Start members for the first time; one that lost a free port to another process
        before it bound it (eaddrinuse: ports are picked free, then bound ~30 s later) gets
        new ports and starts again, up to three times."""
        pending = list(indices)
        for attempt in range(3):
            for i in pending:
                self._spawn(self.members[i])
            failed: list[int] = []
            for i in pending:
                try:
                    self.wait_ready(i, timeout)
                except ClusterError as exc:
                    if "eaddrinuse" not in str(exc) or attempt == 2:
                        raise
                    failed.append(i)
            for i in failed:
                m = self.members[i]
                self.procs.pop(i, None)
                m.amqp, m.mqtt, m.dist = free_port(), free_port(), free_port()
                self._write_config(m)
            if not failed:
                return
            pending = failed

    def _spawn(self, m: Member) -> None:
        out = (self.workdir / f"m{m.index}" / "log" / "console.log").open("ab")
        try:
            proc = subprocess.Popen(
                [str(RABBITMQ_BIN / "rabbitmq-server")],
                env=self._env(m),
                cwd=self.workdir,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # a Ctrl-C of the caller does not reach the broker
            )
        finally:
            out.close()
        self.procs[m.index] = proc
        m.pid = proc.pid

    def start(self, timeout: float = 180.0) -> RabbitCluster:
        """Start the first member, then the others together; wait until each serves MQTT and
        AMQP and every member's MQTT client-id tracker has every member.

        Why not all at once: RabbitMQ 3.10 tracks MQTT client ids in a Raft cluster
        (``mqtt_node``) that each member creates or joins when its plugin starts; members
        booted together formed two of them here, and after a member was killed the MQTT
        listener of the one left outside refused every client ("client ID registration timed
        out"). Started after the first one, the others join its tracker."""
        if not available():
            raise ClusterError(
                f"RabbitMQ is not installed ({RABBITMQ_BIN}/rabbitmq-server missing): "
                "apt-get install rabbitmq-server (scripts/system-deps.sh)"
            )
        self._prepare()
        try:
            self._first_start([0], timeout)
            self._first_start([m.index for m in self.members[1:]], timeout)
            self.check_mqtt_tracker()
        except BaseException:
            self.stop()
            raise
        self._save()
        return self

    def check_mqtt_tracker(self, timeout: float = 60.0) -> None:
        """Raise ClusterError unless every member's MQTT client-id tracker has all members."""
        deadline = time.monotonic() + timeout
        for m in self.members:
            while True:
                out = self.ctl("eval", "ra:members({mqtt_node, node()}).", index=m.index)
                if out.startswith("{ok,") and all(x.name in out for x in self.members):
                    break
                if time.monotonic() > deadline:
                    raise ClusterError(
                        f"RabbitMQ member {m.name}: its MQTT client-id tracker is not the "
                        f"cluster's ({' '.join(out.split())[:200]})"
                    )
                time.sleep(1.0)

    def wait_ready(self, index: int, timeout: float = 180.0) -> None:
        m = self.members[index]
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            proc = self.procs.get(index)
            if proc is None or proc.poll() is not None:
                log = self.workdir / f"m{index}" / "log" / "console.log"
                text = log.read_text(errors="replace") if log.exists() else ""
                tail = text[-1500:] + (" eaddrinuse" if "eaddrinuse" in text[-20000:] else "")
                raise ClusterError(f"RabbitMQ member {m.name} exited while starting: {tail}")
            if port_open(m.mqtt) and port_open(m.amqp):
                return
            time.sleep(0.25)
        raise ClusterError(f"RabbitMQ member {m.name} did not listen within {timeout:.0f} s")

    def kill(self, index: int) -> None:
        """SIGKILL one member, as a crash or a pulled power cord would."""
        proc = self.procs.pop(index, None)
        if proc is not None and proc.poll() is None:
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait(10)

    def restart(self, index: int, timeout: float = 180.0) -> None:
        """Start a stopped or killed member again (same name, ports and data)."""
        if index in self.procs and self.procs[index].poll() is None:
            return
        if self._stopped:
            raise ClusterError("the cluster was stopped")
        self._spawn(self.members[index])
        self._save()  # its pid, so a 'stop' from another process finds it while it boots
        self.wait_ready(index, timeout)
        self._save()

    def ctl(self, *args: str, index: int = 0, timeout: float = 60.0) -> str:
        """rabbitmqctl against one member; its output (raises ClusterError on failure)."""
        m = self.members[index]
        res = subprocess.run(
            [str(RABBITMQ_BIN / "rabbitmqctl"), "-n", m.name, *args],
            env=self._env(m),
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        if res.returncode != 0:
            raise ClusterError(f"rabbitmqctl {' '.join(args)} on {m.name}: {res.stderr.strip()}")
        return res.stdout

    def stop(self) -> None:
        """Stop every member (SIGTERM, then SIGKILL after 20 s) and this cluster's epmd."""
        self._stopped = True
        for proc in self.procs.values():
            if proc.poll() is None:
                proc.terminate()
        deadline = time.monotonic() + 20
        for proc in self.procs.values():
            try:
                proc.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(5)
        self.procs.clear()
        subprocess.run(
            [EPMD, "-port", str(self.epmd_port), "-kill"],
            capture_output=True,
            timeout=10,
            check=False,
        )
        self._save()

    def pids(self) -> list[int]:
        return [p.pid for p in list(self.procs.values()) if p.poll() is None]

    def _save(self) -> None:
        state = {
            "epmd_port": self.epmd_port,
            "members": [
                {
                    "name": m.name,
                    "pid": self.procs[m.index].pid if m.index in self.procs else 0,
                    "mqtt": m.mqtt_url,
                    "amqp": m.amqp_url,
                }
                for m in self.members
            ],
        }
        (self.workdir / _STATE).write_text(json.dumps(state, indent=2), encoding="utf-8")

    def __enter__(self) -> RabbitCluster:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _stop_saved(workdir: Path) -> int:
    """Stop a cluster started by ``start`` in another process, by the pids it saved."""
    path = workdir / _STATE
    if not path.exists():
        print(f"rabbit-cluster: no cluster recorded in {path}", file=sys.stderr)
        return 1
    state = json.loads(path.read_text(encoding="utf-8"))
    pids = [int(m["pid"]) for m in state["members"] if m["pid"]]
    for pid in pids:
        try:
            os.kill(pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
    deadline = time.monotonic() + 20
    for pid in pids:
        while time.monotonic() < deadline:
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                break
            time.sleep(0.2)
        else:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
    subprocess.run(
        [EPMD, "-port", str(state["epmd_port"]), "-kill"],
        capture_output=True,
        timeout=10,
        check=False,
    )
    path.unlink()
    print(f"rabbit-cluster: stopped {len(pids)} members")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="rabbit-cluster", description=__doc__.splitlines()[0])
    parser.add_argument("action", choices=["start", "stop"])
    parser.add_argument("workdir", type=Path)
    parser.add_argument("--size", type=int, default=3)
    args = parser.parse_args(argv)
    if args.action == "stop":
        return _stop_saved(args.workdir)
    cluster = RabbitCluster(args.workdir, args.size)
    try:
        cluster.start()
    except ClusterError as exc:
        print(f"rabbit-cluster: {exc}", file=sys.stderr)
        return 1
    for m in cluster.members:
        print(f"{m.name} pid {m.pid} {m.mqtt_url} {m.amqp_url}")
    # the members are in their own sessions: they outlive this process until 'stop'
    return 0


if __name__ == "__main__":
    sys.exit(main())
