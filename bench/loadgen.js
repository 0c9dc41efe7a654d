// The bench's load generator: many Socket.IO clients in one node process, cheap per message.
//
// node bench/loadgen.js '<job as JSON>'
//
// It speaks Engine.IO v4 / Socket.IO v5 over raw WebSockets (the `ws`
// package): no client library, no per-message decoding while the run lasts
// (a frame is stamped and kept; it is decoded after the run). The sender and
// every receiver are in this process, on one clock (process.hrtime, the
// same in every thread); the sender runs on a worker thread of its own, so
// that a thousand frames arriving at once never make it send late.
//
// Protocol with the caller (bench/nodegen.py), one JSON line each on stdout:
//   {"ready": true}            every client connected (and, from the bridge, has its snapshot)
// then, after a line "go" on stdin, the run, and
//   {"result": {...}}          latencies, delivery, own CPU and event-loop lag.
//
// Jobs: {"kind": "socket" | "osc", "url", "clients", "rate", "count", "base",
//        "who", "osc_port"?, "settle_s"?, "connect_batch"?}
//   socket: a client sends `value changed` at `rate`/s; the others receive.
//   osc:    OSC messages (one float) go to 127.0.0.1:`osc_port` at `rate`/s,
//           or as fast as possible with rate 0; every client receives.
"use strict";

const dgram = require("node:dgram");
const { monitorEventLoopDelay } = require("node:perf_hooks");
const readline = require("node:readline");
const { Worker, isMainThread, parentPort, workerData } = require("node:worker_threads");
const WebSocket = require("ws");

const job = isMainThread ? JSON.parse(process.argv[2]) : workerData;
/** Milliseconds on the monotonic clock every thread of the process shares. */
const now = () => Number(process.hrtime.bigint()) / 1e6;
const PING = 0x32; // "2": Engine.IO ping, answered "3" at once

function out(obj) {
  process.stdout.write(JSON.stringify(obj) + "\n");
}

/** One Socket.IO client; frames after the snapshot are stamped and kept raw. */
class Client {
  constructor(index) {
    this.index = index;
    this.frames = []; // [time ms, Buffer]
    this.snapshot = null;
    this.connected = false;
  }

  connect(url) {
    return new Promise((resolve, reject) => {
      const wsUrl = url.replace(/^http/, "ws") + "/socket.io/?EIO=4&transport=websocket";
      const ws = new WebSocket(wsUrl, { perMessageDeflate: false });
      this.ws = ws;
      const timer = setTimeout(() => reject(new Error("connect timeout")), 30000);
      ws.on("error", (err) => {
        clearTimeout(timer);
        reject(err);
      });
      ws.on("message", (data, isBinary) => {
        const t = now();
        if (data.length === 1 && data[0] === PING) {
          ws.send("3");
          return;
        }
        if (this.connected) {
          this.frames.push([t, data]);
          return;
        }
        const text = data.toString();
        if (text.startsWith("0")) {
          ws.send('40{"batch":true}'); // reads "update values", as the page does
        } else if (text.startsWith('42["snapshot"')) {
          this.snapshot = JSON.parse(text.slice(2))[1].values; // the bridge's, before its connect answer
        } else if (text.startsWith("40")) {
          this.connected = true;
          clearTimeout(timer);
          resolve(this);
        } else if (text.startsWith("44")) {
          clearTimeout(timer);
          reject(new Error("refused: " + text));
        }
      });
    });
  }

  /** [[time, who, data], ...] of every update received, in order. */
  updates() {
    const found = [];
    for (const [t, data] of this.frames) {
      const text = data.toString();
      if (!text.startsWith("42")) continue;
      const [event, payload] = JSON.parse(text.slice(2));
      if (event === "update value") found.push([t, payload.who, payload.data]);
      else if (event === "update values") for (const m of payload) found.push([t, m.who, m.data]);
    }
    return found;
  }

  close() {
    this.ws.terminate();
  }
}

function oscMessage(address, value) {
  const pad = (n) => n + (4 - (n % 4));
  const addr = Buffer.alloc(pad(Buffer.byteLength(address)));
  addr.write(address);
  const tags = Buffer.alloc(4);
  tags.write(",f");
  const arg = Buffer.alloc(4);
  arg.writeFloatBE(value);
  return Buffer.concat([addr, tags, arg]);
}

function percentile(sorted, q) {
  if (!sorted.length) return null;
  return sorted[Math.min(sorted.length - 1, Math.round(q * (sorted.length - 1)))];
}

const round3 = (x) => (x === null ? null : Math.round(x * 1000) / 1000);

async function connectAll(n, batchSize) {
  const clients = [];
  for (let i = 0; i < n; i += batchSize) {
    const batch = [];
    for (let j = i; j < Math.min(n, i + batchSize); j++) batch.push(new Client(j).connect(job.url));
    clients.push(...(await Promise.all(batch)));
  }
  return clients;
}

/** The sender, on its worker thread: connects, waits for "go", sends, posts the send times. */
async function sendFromWorker() {
  const sender = job.kind === "socket" ? await new Client(-1).connect(job.url) : null;
  const udp = job.kind === "osc" ? dgram.createSocket("udp4") : null;
  parentPort.postMessage({ ready: true });
  await new Promise((resolve) => parentPort.once("message", resolve));
  const sent = [];
  let lateSum = 0;
  let lateMax = 0;
  const start = now();
  for (let k = 0; k < job.count; k++) {
    const value = job.base + k;
    if (job.rate > 0) {
      // Paced against the clock; each send is stamped when it goes, so timer jitter costs no accuracy.
      const wait = start + (k * 1000) / job.rate - now();
      if (wait > 0) await new Promise((resolve) => setTimeout(resolve, wait));
    } else if (k % 64 === 0) {
      await new Promise((resolve) => setImmediate(resolve));
    }
    const t = now();
    if (job.rate > 0) {
      const late = t - (start + (k * 1000) / job.rate);
      lateSum += late;
      lateMax = Math.max(lateMax, late);
    }
    sent.push([value, t]);
    if (udp) udp.send(oscMessage("/" + job.who, value), job.osc_port, "127.0.0.1");
    else sender.ws.send(`42["value changed",{"who":"${job.who}","data":${value}}]`);
  }
  const ended = now();
  // A moment for the last datagram or frame to leave before the sockets close.
  await new Promise((resolve) => setTimeout(resolve, 50));
  parentPort.postMessage({ sent, start, ended, lateSum, lateMax, cpu: process.cpuUsage() });
  if (sender) sender.close();
  if (udp) udp.close();
}

async function main() {
  const worker = new Worker(__filename, { workerData: job });
  const fromWorker = () => new Promise((resolve, reject) => {
    worker.once("message", resolve);
    worker.once("error", reject);
  });
  const workerReady = fromWorker();
  const receivers = await connectAll(job.clients, job.connect_batch || 50);
  await workerReady;
  out({ ready: true });
  await new Promise((resolve) => readline.createInterface({ input: process.stdin }).once("line", resolve));

  const lag = monitorEventLoopDelay({ resolution: 1 });
  lag.enable();
  const cpu0 = process.cpuUsage(); // the whole process: every thread
  const wall0 = now();
  const done = fromWorker();
  worker.postMessage("go");
  const report = await done;
  const sent = new Map(report.sent);
  const ended = report.ended;
  const last = job.base + job.count - 1;
  // Wait until every receiver has the last value (or the deadline): frames are
  // decoded only now, after the run.
  const deadline = ended + (job.settle_s || 30) * 1000;
  const lastSeen = new Array(receivers.length).fill(null);
  const scanned = new Array(receivers.length).fill(0);
  const hasLast = (c) => {
    for (; scanned[c.index] < c.frames.length; scanned[c.index]++) {
      const [t, data] = c.frames[scanned[c.index]];
      if (data.includes(`"data":${last}`)) lastSeen[c.index] = t;
    }
    return lastSeen[c.index] !== null;
  };
  while (!receivers.every(hasLast) && now() < deadline) {
    await new Promise((resolve) => setTimeout(resolve, 1));
  }
  const wall = now() - wall0;
  const cpu = process.cpuUsage(cpu0);
  lag.disable();
  const settled = lastSeen.every((t) => t !== null) ? Math.max(...lastSeen) : null;

  const latencies = [];
  let delivered = 0;
  for (const c of receivers) {
    const seen = new Set();
    for (const [t, who, data] of c.updates()) {
      if (who !== job.who || seen.has(data) || !sent.has(data)) continue;
      seen.add(data);
      latencies.push(t - sent.get(data));
      delivered++;
    }
  }
  latencies.sort((a, b) => a - b);
  const cpuS = (cpu.user + cpu.system) / 1e6;
  out({
    result: {
      p50_ms: round3(percentile(latencies, 0.5)),
      p99_ms: round3(percentile(latencies, 0.99)),
      max_ms: round3(latencies.length ? latencies[latencies.length - 1] : null),
      n: latencies.length,
      delivered: Math.round((delivered / Math.max(1, job.count * receivers.length)) * 10000) / 10000,
      all_on_last: settled !== null,
      settled_ms: settled === null ? null : round3(Math.max(0, settled - ended)),
      send_s: round3((ended - report.start) / 1000),
      loadgen_cpu_s: round3(cpuS),
      // Of one core: the receivers' thread does nearly all of the work.
      loadgen_busy: round3(cpuS / (wall / 1000)),
      loadgen_lag_p99_ms: round3(lag.percentile(99) / 1e6),
      // How late the sends went against their schedule: a late sender sends in bursts.
      send_late_mean_ms: round3(job.count && job.rate ? report.lateSum / job.count : 0),
      send_late_max_ms: round3(report.lateMax),
    },
  });
  for (const c of receivers) c.close();
  await worker.terminate();
}

(isMainThread ? main() : sendFromWorker()).then(
  () => isMainThread && process.stdout.write("", () => process.exit(0)),
  (err) => {
    out({ error: String((err && err.stack) || err) });
    process.exit(1);
  },
);
