"""The node's Prometheus exposition: ``/metrics`` over HTTP (docs/metrics.md).

Counters the node keeps anyway (parcels by outcome, decisions, the outbox's, the MCU link's,
the camera's, the reporter's) are read at scrape time by a custom collector, so the node's
loop does no second bookkeeping for them. Only what the node does not keep is observed as it
happens: each published parcel record's stage latencies and divert error go into histograms
(``record``, a few microseconds per parcel).

The HTTP server runs in its own thread (one more per request); a scrape reads plain
attributes and copies dicts and sets, never waits for the node's loop, and so cannot hold up
the belt. An address that cannot be bound is logged and retried; the cell runs on without it.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING, Any, get_args
from wsgiref.simple_server import WSGIRequestHandler, make_server

from prometheus_client import (
    CollectorRegistry,
    Histogram,
    ProcessCollector,
    disable_created_metrics,
    make_wsgi_app,
)
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    Metric,
    SummaryMetricFamily,
)
from prometheus_client.exposition import ThreadingWSGIServer, generate_latest
from prometheus_client.registry import Collector

from edge.cell.record import STAGES, DecisionSource, Outcome, ParcelRecord
from edge.config.metrics import MetricsConfig, format_listen
from edge.safety.machine import State

if TYPE_CHECKING:
    from edge.node.cell_node import CellNode

log = logging.getLogger("wolfpack.node.metrics")

OUTCOMES: tuple[str, ...] = get_args(Outcome)
SOURCES: tuple[str, ...] = (*get_args(DecisionSource), "none")
# Stage latencies run from a millisecond (the brain on loopback) to seconds (a parcel's
# travel to its chute); the divert error from a millimetre to the diverter's capture window.
LATENCY_BUCKETS = (0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0, 10.0)
DIVERT_BUCKETS = (0.001, 0.002, 0.005, 0.01, 0.02, 0.03, 0.05, 0.1, 0.2)
RETRY_BIND_S = 5.0
POLL_S = 0.2  # how often the server thread looks for a stop between requests


class NodeMetrics:
    """A node's metrics registry and its HTTP server. ``record`` is called on the node's
    loop for each published record; ``start``/``stop`` from the node's open and shutdown."""

    def __init__(self, node: CellNode, cfg: MetricsConfig) -> None:
        self.cfg = cfg
        disable_created_metrics()  # no *_created series beside each histogram (this process)
        self.registry = CollectorRegistry(auto_describe=False)
        self.stage_latency = Histogram(
            "wolfpack_stage_latency_seconds",
            "Time between consecutive milestones of a parcel (edge/cell/record.py STAGES), "
            "observed when its record is published",
            ["stage"],
            registry=self.registry,
            buckets=LATENCY_BUCKETS,
        )
        self._stages = {name: self.stage_latency.labels(name) for name, _, _ in STAGES}
        self.divert_error = Histogram(
            "wolfpack_divert_error_meters",
            "Distance between where a stroke was planned and where it fired, absolute",
            registry=self.registry,
            buckets=DIVERT_BUCKETS,
        )
        self.registry.register(NodeCollector(node))
        ProcessCollector(registry=self.registry)  # CPU seconds, RSS, open fds of this process
        self.record_errors = 0
        self.port: int | None = None  # the bound port, once bound (listen port 0: any)
        self.bound = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    # ---- the node's loop ----------------------------------------------------------------------
    def record(self, rec: ParcelRecord) -> None:
        """Observe one published record's latencies; never raises into the node."""
        try:
            for stage, ms in rec.latency_ms.items():
                child = self._stages.get(stage)
                if child is not None and ms >= 0:
                    child.observe(ms / 1000)
            if rec.divert_error_mm is not None:
                self.divert_error.observe(abs(rec.divert_error_mm) / 1000)
        except Exception:  # a metric is never worth a parcel
            self.record_errors += 1

    def start(self) -> None:
        """Serve from a thread of its own; returns at once (binding happens there)."""
        if self._thread is not None:
            return
        self._thread = threading.Thread(target=self._serve, name="metrics-http", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 2.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)

    @property
    def url(self) -> str | None:
        if self.port is None:
            return None
        host = self.cfg.host
        if host in ("0.0.0.0", "::"):
            host = "127.0.0.1" if host == "0.0.0.0" else "::1"
        return f"http://{format_listen(host, self.port)}/metrics"

    def exposition(self) -> bytes:
        """The text a scrape gets (tests, a diagnostic)."""
        return generate_latest(self.registry)

    # ---- the server thread ---------------------------------------------------------------------
    def _serve(self) -> None:
        host, port = self.cfg.host, self.cfg.port
        app = make_wsgi_app(self.registry)
        failed = 0
        while not self._stop.is_set():
            try:
                server = _bind(host, port, app)
            except OSError as exc:
                failed += 1
                if failed == 1 or failed % 60 == 0:
                    log.error("metrics: cannot listen on %s: %s; retrying every %g s (the cell "
                              "runs on without /metrics)", self.cfg.listen, exc.strerror or exc,
                              RETRY_BIND_S)  # fmt: skip
                self._stop.wait(RETRY_BIND_S)
                continue
            with server:
                self.port = int(server.server_address[1])
                self.bound.set()
                log.info("metrics: serving %s", self.url)
                while not self._stop.is_set():
                    server.handle_request()  # returns after POLL_S without a request
            return


class _QuietHandler(WSGIRequestHandler):
    """No access log line per scrape on the node's stderr."""

    def log_message(self, format: str, *args: Any) -> None:
        pass


def _bind(host: str, port: int, app: Any) -> ThreadingWSGIServer:
    import socket

    class Server(ThreadingWSGIServer):
        address_family = socket.AF_INET6 if ":" in host else socket.AF_INET

        def server_bind(self) -> None:
            # HTTPServer.server_bind looks the host's name up (socket.getfqdn): skip it, a
            # board without DNS would wait for it
            self.socket.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            self.socket.bind(self.server_address)
            self.server_address = self.socket.getsockname()
            self.server_name, self.server_port = host, int(self.server_address[1])
            self.setup_environ()

    server = make_server(host, port, app, Server, handler_class=_QuietHandler)
    server.timeout = POLL_S
    return server


class NodeCollector(Collector):
    """Reads the node's live counters and states at each scrape (no lock of the loop)."""

    def __init__(self, node: CellNode) -> None:
        self.node = node
        self.errors: dict[str, int] = {}  # section -> scrapes in which it failed

    def collect(self) -> Iterable[Metric]:
        node = self.node
        sections = [self._parcels, self._safety, self._node]
        for part, section in ((node.fleet, self._fleet), (node.mcu, self._mcu),
                              (node.plc, self._plc), (node.camera, self._camera)):  # fmt: skip
            if part is not None:
                sections.append(section)
        for section in sections:
            name = section.__name__.lstrip("_")
            try:
                families = list(section(node))
            except Exception:  # one part's failure must not take the whole scrape with it
                self.errors[name] = self.errors.get(name, 0) + 1
                if self.errors[name] == 1:
                    log.exception("metrics: the %s section failed (left out of scrapes)", name)
                continue
            yield from families
        fam = CounterMetricFamily(
            "wolfpack_metrics_errors",
            "Scrapes in which a section of these metrics failed (logged once)",
            labels=["section"],
        )
        for name, count in sorted(self.errors.items()):
            fam.add_metric([name], count)
        yield fam

    # ---- sections -----------------------------------------------------------------------------
    def _parcels(self, node: CellNode) -> Iterator[Metric]:
        counters = _copy(node.counters)
        decisions = _copy(node.decisions)
        fam = CounterMetricFamily(
            "wolfpack_parcels", "Parcel records published, by outcome", labels=["outcome"]
        )
        for outcome in OUTCOMES:
            fam.add_metric([outcome], counters.get(outcome, 0))
        yield fam
        fam = CounterMetricFamily(
            "wolfpack_decisions", "Parcel records by who decided the chute", labels=["source"]
        )
        for source in sorted(set(SOURCES) | set(decisions)):
            fam.add_metric([source], decisions.get(source, 0))
        yield fam
        yield _g("parcels_active", "Parcels tracked on the belt now", len(node.core.active))
        yield _c("parcels_restored", "Parcels taken back under tracking from the journal after "
                 "a restart", counters.get("parcels_restored", 0))  # fmt: skip
        fam = CounterMetricFamily("wolfpack_alarms", "Cell alarms raised, by kind", labels=["kind"])
        for key, value in sorted(counters.items()):
            if key.startswith("alarm_"):
                fam.add_metric([key.removeprefix("alarm_")], value)
        yield fam
        fam = CounterMetricFamily(
            "wolfpack_scanner_reports", "Fixed scanner reports, by result", labels=["result"]
        )
        for result, key in (("read", "scanner_reads"), ("no_read", "scanner_no_reads"),
                            ("line_error", "scanner_line_errors")):  # fmt: skip
            fam.add_metric([result], counters.get(key, 0))
        yield fam

    def _safety(self, node: CellNode) -> Iterator[Metric]:
        safety = node.safety
        now = safety.state
        fam = GaugeMetricFamily(
            "wolfpack_safety_state", "1 for the cell's safety state now, 0 for the others",
            labels=["state"],
        )  # fmt: skip
        for state in State:
            fam.add_metric([state.value], 1.0 if state is now else 0.0)
        yield fam
        devices, up, degraded = set(safety.devices), set(safety.up), set(safety.degraded)
        fam = GaugeMetricFamily(
            "wolfpack_device_up", "1 while the safety machine counts the device up",
            labels=["device"],
        )  # fmt: skip
        for dev in sorted(devices):
            fam.add_metric([dev], 1.0 if dev in up else 0.0)
        yield fam
        fam = GaugeMetricFamily(
            "wolfpack_device_degraded", "1 while the cell runs without the device (its policy "
            "is degrade)", labels=["device"],
        )  # fmt: skip
        for dev in sorted(devices):
            fam.add_metric([dev], 1.0 if dev in degraded else 0.0)
        yield fam
        counters = _copy(node.counters)
        fam = CounterMetricFamily(
            "wolfpack_belt_command_failures", "Belt commands the PLC did not take",
            labels=["command"],
        )  # fmt: skip
        for command in ("start", "stop"):
            fam.add_metric([command], counters.get(f"belt_{command}_failures", 0))
        yield fam

    def _node(self, node: CellNode) -> Iterator[Metric]:
        info = GaugeMetricFamily(
            "wolfpack_node_info",
            "The node's identity and config version (value 1)",
            labels=["site", "node", "config_version"],
        )
        info.add_metric([node.board.node.site, node.board.node.id, node.config_version], 1.0)
        yield info
        fam = CounterMetricFamily(
            "wolfpack_task_restarts",
            "Restarts of the node's supervised tasks after a crash",
            labels=["task"],
        )
        for name, status in sorted(dict(node.supervisor.status).items()):
            fam.add_metric([name], status.restarts)
        yield fam
        rep = node.reporter
        safety_errors = _copy(node.counters).get("report_errors", 0)
        yield _c("reporter_reports", "Reports the reporting thread carried out (MQTT events, "
                 "health file)", rep.done)  # fmt: skip
        yield _c("reporter_errors", "Reports that failed (counted, logged)",
                 rep.errors + safety_errors)  # fmt: skip
        yield _c("reporter_dropped", "Reports dropped: the reporting queue was full", rep.dropped)
        yield _g("reporter_backlog", "Reports waiting for the reporting thread", rep.backlog)
        yield _c("reporter_restarts", "Times the reporting thread was restarted", rep.restarts)

    def _fleet(self, node: CellNode) -> Iterator[Metric]:
        assert node.fleet is not None
        link = node.fleet.link
        yield _g("fleet_connected", "1 while connected to the broker", link.connected.is_set())
        yield _c("fleet_connects", "Connections made to the broker", link.connects)
        yield _c("fleet_refused_publishes", "Messages the broker refused", link.rejected)
        st = link.outbox.stats()
        yield _g("outbox_depth", "Messages not yet acknowledged by the broker", st.depth)
        yield _g("outbox_kept", "Acknowledged messages kept for replay", st.kept)
        yield _g("outbox_bytes", "Bytes the outbox holds", st.bytes)
        yield _g("outbox_max_bytes", "The outbox's size bound", st.max_bytes)
        fam = CounterMetricFamily(
            "wolfpack_outbox_dropped",
            "Messages dropped by the outbox at its bound, by channel",
            labels=["channel"],
        )
        fam.add_metric(["telemetry"], st.dropped_telemetry)
        fam.add_metric(["events"], st.dropped_events)
        yield fam
        yield _c("outbox_store_errors", "Writes the outbox's disk refused", st.store_errors)
        yield _g("outbox_storage_ok", "1 while the outbox's disk takes writes", st.storage == "ok")
        yield _g("outbox_spilled", "Messages waiting in memory for the disk", st.spilled)
        yield _c("outbox_dead_lettered", "Messages replaced by a placeholder (too large to send)",
                 st.dead_lettered)  # fmt: skip

    def _mcu(self, node: CellNode) -> Iterator[Metric]:
        mcu = node.mcu
        assert mcu is not None
        name = [mcu.name]
        c = mcu.endpoint.counters
        rtt = mcu.endpoint.rtt
        dec = mcu.decoder.stats
        yield _gauge("wolfpack_mcu_link_up", "1 while the MCU link is connected", name,
                     1.0 if mcu.state.up else 0.0)  # fmt: skip
        fam = CounterMetricFamily("wolfpack_mcu_frames", "Link frames, by direction",
                                  labels=["mcu", "direction"])  # fmt: skip
        fam.add_metric([*name, "sent"], c.frames_sent)
        fam.add_metric([*name, "received"], c.frames_received)
        yield fam
        yield _counter("wolfpack_mcu_retransmits", "Frames sent again (no ACK in time, or a "
                       "NAK)", name, c.retransmits)  # fmt: skip
        yield _counter("wolfpack_mcu_timeouts", "Retransmission timeouts", name, c.timeouts)
        fam = CounterMetricFamily("wolfpack_mcu_naks", "NAKs, by direction",
                                  labels=["mcu", "direction"])  # fmt: skip
        fam.add_metric([*name, "sent"], c.naks_sent)
        fam.add_metric([*name, "received"], c.naks_received)
        yield fam
        fam = CounterMetricFamily("wolfpack_mcu_bad_frames", "Received frames thrown away, by "
                                  "reason", labels=["mcu", "reason"])  # fmt: skip
        for reason, value in (
            ("crc", dec.crc_errors),
            ("length", dec.length_errors),
            ("flags", dec.flag_errors),
            ("partial", dec.abandoned_partials),
        ):
            fam.add_metric([*name, reason], value)
        yield fam
        yield _counter("wolfpack_mcu_reconnects", "Link reconnections", name,
                       mcu.stats.reconnects)  # fmt: skip
        yield _counter("wolfpack_mcu_resets", "MCU resets the host noticed", name,
                       mcu.stats.mcu_resets)  # fmt: skip
        if rtt.srtt is not None:
            yield _gauge("wolfpack_mcu_rtt_seconds", "Smoothed round trip of the link (RFC 6298 "
                         "SRTT)", name, rtt.srtt)  # fmt: skip
        yield _gauge("wolfpack_mcu_rto_seconds", "Retransmission timeout now", name, rtt.rto)

    def _plc(self, node: CellNode) -> Iterator[Metric]:
        plc = node.plc
        assert plc is not None
        last = node._plc_last
        online = last is not None and last.online
        yield _g("plc_online", "1 while the PLC answers its polls", online)
        if last is not None and online:
            yield _g("belt_speed_meters_per_second", "Belt speed the PLC reports",
                     last.speed_mm_s / 1000)  # fmt: skip
            yield _g("estop_pressed", "1 while the PLC reports e-stop", last.estop)
        yield _c("plc_heartbeats", "Heartbeats written to the PLC", plc.heartbeats)
        yield _c("plc_heartbeat_failures", "Heartbeat writes that failed", plc.heartbeat_failures)
        yield _c("plc_write_failures", "Belt command writes that failed", plc.write_failures)

    def _camera(self, node: CellNode) -> Iterator[Metric]:
        stats = _copy(getattr(node.camera, "stats", {}))
        fam = CounterMetricFamily("wolfpack_camera_frames", "Camera frames, by what became of "
                                  "them", labels=["result"])  # fmt: skip
        fam.add_metric(["processed"], stats.get("processed", 0))
        fam.add_metric(["skipped"], stats.get("skipped", 0))
        yield fam
        fam = CounterMetricFamily("wolfpack_camera_parcels", "Parcels the camera reported, by "
                                  "whether it read their label", labels=["label"])  # fmt: skip
        fam.add_metric(["read"], stats.get("labels", 0))
        fam.add_metric(["unread"], stats.get("unlabelled", 0))
        yield fam
        processed = stats.get("processed", 0)
        yield SummaryMetricFamily(
            "wolfpack_camera_process_seconds",
            "Vision pipeline time per processed frame (detect, track, read labels)",
            count_value=int(processed),
            sum_value=processed * stats.get("process_ms_mean", 0.0) / 1000,
        )


def _c(name: str, doc: str, value: float) -> CounterMetricFamily:
    """An unlabelled counter ``wolfpack_<name>_total``."""
    return CounterMetricFamily(f"wolfpack_{name}", doc, value=value)


def _g(name: str, doc: str, value: float | bool) -> GaugeMetricFamily:
    """An unlabelled gauge ``wolfpack_<name>`` (a bool is 1 or 0)."""
    return GaugeMetricFamily(f"wolfpack_{name}", doc, value=float(value))


def _gauge(name: str, doc: str, mcu: list[str], value: float) -> GaugeMetricFamily:
    fam = GaugeMetricFamily(name, doc, labels=["mcu"])
    fam.add_metric(mcu, value)
    return fam


def _counter(name: str, doc: str, mcu: list[str], value: float) -> CounterMetricFamily:
    fam = CounterMetricFamily(name, doc, labels=["mcu"])
    fam.add_metric(mcu, value)
    return fam


def _copy(d: Any) -> dict[Any, Any]:
    """A snapshot of a dict another thread may be changing (dict() of a dict is one C call
    under the GIL; the retry covers an interpreter where it is not)."""
    for _ in range(5):
        try:
            return dict(d)
        except RuntimeError:  # changed size during the copy
            time.sleep(0)
    return {}
