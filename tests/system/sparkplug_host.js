// An independent Sparkplug B host application for the tests: Eclipse Tahu's JavaScript
// payload library (npm sparkplug-payload) and MQTT.js (npm mqtt), nothing of ours. It
// publishes its STATE (3.0 JSON, retained, with the matching will), decodes every message
// of its group, checks what a host checks (seq continuity, aliases known from the births,
// NDEATH bdSeq matching the NBIRTH) and prints one JSON line per message or finding.
// Commands, one JSON object per line on stdin:
//   {"cmd": "rebirth", "edge": ID}            NCMD Node Control/Rebirth = true
//   {"cmd": "dcmd", "edge": ID, "device": D, "name": N, "type": T, "value": V}
//   {"cmd": "state", "online": bool}          a new STATE (a host going away / coming back)
// Usage: node sparkplug_host.js URL GROUP HOST_ID   (installed by scripts/sparkplug-tools.sh)
"use strict";
const path = require("path");
const readline = require("readline");
const modules = path.resolve(process.env.SPARKPLUG_TOOLS_MODULES || path.join(__dirname, "node_modules"));
const mqtt = require(path.join(modules, "mqtt"));
const sparkplug = require(path.join(modules, "sparkplug-payload")).get("spBv1.0");
const Long = require(path.join(modules, "long"));

const [url, group, hostId] = process.argv.slice(2);
const stateTopic = `spBv1.0/STATE/${hostId}`;
const out = (o) => process.stdout.write(JSON.stringify(o) + "\n");
const plain = (v) => (Long.isLong(v) ? v.toString() : v);
const nodes = {}; // edge -> {bdSeq, seq, online, aliases: {alias: name}}

function statePayload(online, ts) {
  return JSON.stringify({ online, timestamp: ts });
}

let birthTs = Date.now();
const client = mqtt.connect(url, {
  clean: true,
  clientId: `sparkplug-test-host-${hostId}`,
  reconnectPeriod: 0,
  will: { topic: stateTopic, payload: statePayload(false, birthTs), qos: 1, retain: true },
});

client.on("connect", () => {
  client.subscribe([`spBv1.0/${group}/#`, stateTopic], { qos: 1 }, (err) => {
    if (err) return out({ event: "error", error: String(err) });
    client.publish(stateTopic, statePayload(true, birthTs), { qos: 1, retain: true }, () =>
      out({ event: "ready" }),
    );
  });
});
client.on("error", (err) => out({ event: "error", error: String(err) }));

function finding(edge, what) {
  out({ event: "finding", edge, what });
}

client.on("message", (topic, buf) => {
  const levels = topic.split("/");
  if (levels[1] === "STATE") return;
  const [, , type, edge, device] = levels;
  let payload;
  try {
    payload = sparkplug.decodePayload(buf);
  } catch (err) {
    return finding(edge, `undecodable ${type}: ${err}`);
  }
  const node = (nodes[edge] = nodes[edge] || { aliases: {}, online: false });
  const metrics = (payload.metrics || []).map((m) => {
    const named = m.name !== undefined && m.name !== null && m.name !== "";
    const alias = m.alias === undefined ? null : Number(plain(m.alias));
    return {
      name: named ? m.name : null,
      resolved: named ? m.name : alias !== null ? node.aliases[`${device || ""}|${alias}`] : null,
      alias,
      type: m.type,
      value: plain(m.value),
    };
  });
  const seq = payload.seq === undefined ? null : Number(plain(payload.seq));
  if (type === "NBIRTH") {
    const bd = metrics.find((m) => m.name === "bdSeq");
    if (!bd) finding(edge, "NBIRTH without bdSeq");
    if (seq !== 0) finding(edge, `NBIRTH seq ${seq}, expected 0`);
    node.bdSeq = bd ? Number(bd.value) : null;
    node.online = true;
    node.aliases = {};
  } else if (type === "NDEATH") {
    const bd = metrics.find((m) => m.name === "bdSeq");
    const value = bd ? Number(bd.value) : null;
    if (value === node.bdSeq) node.online = false;
    else out({ event: "stale_ndeath", edge, bdSeq: value, current: node.bdSeq });
  } else if (seq !== null && node.seq !== undefined && seq !== (node.seq + 1) % 256) {
    finding(edge, `${type} seq ${seq} after ${node.seq}`);
  }
  if (seq !== null) node.seq = seq;
  if (type.endsWith("BIRTH")) {
    for (const m of metrics) {
      if (m.alias === null) continue;
      const key = `${device || ""}|${m.alias}`;
      const taken = Object.entries(node.aliases).find(([k]) => k.split("|")[1] === String(m.alias));
      if (taken && taken[0] !== key) finding(edge, `alias ${m.alias} of ${m.name} already used`);
      node.aliases[key] = m.name;
    }
  } else if (type.endsWith("DATA")) {
    for (const m of metrics) {
      if (m.resolved === undefined || m.resolved === null) finding(edge, `unknown alias ${m.alias}`);
    }
  }
  out({ event: "message", type, edge, device: device || null, seq, online: node.online,
        bdSeq: node.bdSeq, metrics });
});

readline.createInterface({ input: process.stdin }).on("line", (line) => {
  let c;
  try {
    c = JSON.parse(line);
  } catch (err) {
    return out({ event: "error", error: `bad command: ${line}` });
  }
  if (c.cmd === "rebirth") {
    const body = sparkplug.encodePayload({
      timestamp: Date.now(),
      metrics: [{ name: "Node Control/Rebirth", type: "Boolean", value: true }],
    });
    client.publish(`spBv1.0/${group}/NCMD/${c.edge}`, body, { qos: 0 }, () =>
      out({ event: "sent", cmd: "rebirth" }));
  } else if (c.cmd === "dcmd") {
    const body = sparkplug.encodePayload({
      timestamp: Date.now(),
      metrics: [{ name: c.name, type: c.type, value: c.value }],
    });
    client.publish(`spBv1.0/${group}/DCMD/${c.edge}/${c.device}`, body, { qos: 0 }, () =>
      out({ event: "sent", cmd: "dcmd" }));
  } else if (c.cmd === "state") {
    birthTs = Date.now();
    client.publish(stateTopic, statePayload(c.online, birthTs), { qos: 1, retain: true }, () =>
      out({ event: "sent", cmd: "state", online: c.online }));
  }
});
