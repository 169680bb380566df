// Interop checks with Node `ws` as the client of an echo server.
//
// usage: node node_client.mjs ws://HOST:PORT/PATH [--no-compression]
//
// Each check opens its own connection, prints one `PASS name` or `FAIL name: why` line, and the
// script exits 1 when any check failed (2 on bad usage). The server must echo every message back
// unchanged, text as text and binary as binary.
import { WebSocket } from "ws";

const TIMEOUT_MS = 20_000;
const LARGE = 8 * 1024 * 1024;

class CheckFailed extends Error {}

function expect(cond, what) {
  if (!cond) throw new CheckFailed(what);
}

function describe(msg) {
  const kind = msg.isBinary ? "binary" : "text";
  const preview = msg.data.subarray(0, 40).toString(msg.isBinary ? "hex" : "utf8");
  return `${kind} of ${msg.data.length} bytes: ${JSON.stringify(preview)}`;
}

function withTimeout(promise, what) {
  let timer;
  const timeout = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new CheckFailed(`timed out waiting for ${what}`)), TIMEOUT_MS);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

// One connection with a queue of received messages, so checks read them in order with `next()`.
class Client {
  static open(url, compression) {
    const ws = new WebSocket(url, { maxPayload: 16 * 1024 * 1024, perMessageDeflate: compression });
    const client = new Client(ws);
    return withTimeout(
      new Promise((resolve, reject) => {
        ws.once("open", () => resolve(client));
        ws.once("error", reject);
      }),
      "the handshake",
    );
  }

  constructor(ws) {
    this.ws = ws;
    this.queue = [];
    this.waiters = [];
    this.closed = new Promise((resolve) => {
      ws.on("close", (code, reason) => {
        resolve({ code, reason: reason.toString() });
        for (const w of this.waiters.splice(0)) w.reject(new CheckFailed(`closed with ${code}`));
      });
    });
    ws.on("error", (err) => {
      this.error = err;
    });
    ws.on("message", (data, isBinary) => {
      const msg = { data: Buffer.isBuffer(data) ? data : Buffer.concat(data), isBinary };
      const w = this.waiters.shift();
      if (w) w.resolve(msg);
      else this.queue.push(msg);
    });
  }

  next() {
    const msg = this.queue.shift();
    if (msg) return Promise.resolve(msg);
    return withTimeout(
      new Promise((resolve, reject) => this.waiters.push({ resolve, reject })),
      "a message",
    );
  }

  send(data, options = {}) {
    return new Promise((resolve, reject) =>
      this.ws.send(data, options, (err) => (err ? reject(err) : resolve())),
    );
  }

  async echo(data, isBinary) {
    await this.send(data, { binary: isBinary });
    const got = await this.next();
    const want = Buffer.isBuffer(data) ? data : Buffer.from(data, "utf8");
    expect(got.isBinary === isBinary, `sent ${isBinary ? "binary" : "text"}, got ${describe(got)}`);
    expect(got.data.equals(want), `echo differs: sent ${want.length} bytes, got ${describe(got)}`);
  }

  async close(code = 1000, reason = "") {
    this.ws.close(code, reason);
    return withTimeout(this.closed, "the close handshake");
  }
}

async function checkText(c) {
  for (const text of ["hello", "", "héllo wörld ✓ 𝄞 日本語", "x".repeat(125), "y".repeat(126), "z".repeat(65536)]) {
    await c.echo(text, false);
  }
  await c.close();
}

async function checkBinary(c) {
  const all = Buffer.alloc(1024, 0).map((_, i) => i % 256);
  for (const data of [Buffer.from([0, 1, 2]), Buffer.alloc(0), all, Buffer.alloc(70000, 0xff)]) {
    await c.echo(data, true);
  }
  await c.close();
}

async function checkFragmentedText(c) {
  // `fin: false` makes ws send a frame of a message still being written.
  await c.send("frag", { fin: false });
  await c.send("mented ", { fin: false });
  await c.send("text ✓", { fin: true });
  let got = await c.next();
  expect(!got.isBinary && got.data.toString() === "fragmented text ✓", `got ${describe(got)}`);
  // A code point split across two frames must be put back together, not rejected.
  const snowman = Buffer.from("☃");
  await c.send(Buffer.concat([Buffer.from("a"), snowman.subarray(0, 1)]), { binary: false, fin: false });
  await c.send(snowman.subarray(1, 2), { binary: false, fin: false });
  await c.send(Buffer.concat([snowman.subarray(2), Buffer.from("z")]), { binary: false, fin: true });
  got = await c.next();
  expect(!got.isBinary && got.data.toString() === "a☃z", `split code point: got ${describe(got)}`);
  await c.close();
}

async function checkFragmentedBinary(c) {
  const chunks = Array.from({ length: 50 }, (_, i) => Buffer.alloc(1000 + i, i));
  for (let i = 0; i < chunks.length; i++) {
    await c.send(chunks[i], { binary: true, fin: i === chunks.length - 1 });
  }
  const got = await c.next();
  expect(got.isBinary && got.data.equals(Buffer.concat(chunks)), `got ${describe(got)}`);
  await c.close();
}

async function checkLargeBinary(c) {
  const data = Buffer.alloc(LARGE).map((_, i) => i % 251);
  await c.echo(data, true);
  await c.close();
}

async function checkLargeText(c) {
  // 19 bytes per repetition: 16 ASCII ones and a 3-byte euro sign.
  await c.echo("0123456789abcdef€".repeat(Math.floor(LARGE / 19)), false);
  await c.close();
}

async function checkManyMessages(c) {
  const sends = [];
  for (let i = 0; i < 1000; i++) sends.push(c.send(`message ${i}`));
  await Promise.all(sends);
  for (let i = 0; i < 1000; i++) {
    const got = await c.next();
    expect(got.data.toString() === `message ${i}`, `message ${i}: got ${describe(got)}`);
  }
  await c.close();
}

async function checkPing(c) {
  const pong = new Promise((resolve) => c.ws.once("pong", (data) => resolve(data.toString())));
  c.ws.ping("are you there");
  const payload = await withTimeout(pong, "the pong");
  expect(payload === "are you there", `pong carried ${JSON.stringify(payload)}`);
  await c.echo("still open after the ping", false);
  await c.close();
}

function closeCheck(code, reason) {
  return async (c) => {
    await c.echo("before close", false);
    const closed = await c.close(code, reason);
    // RFC 6455 5.5.1: the answering close frame usually echoes the code it received.
    expect(closed.code === code, `server answered close ${code} with ${closed.code}`);
    expect(c.ws.readyState === WebSocket.CLOSED, `readyState ${c.ws.readyState} after close`);
  };
}

const CHECKS = [
  ["text", checkText],
  ["binary", checkBinary],
  ["fragmented-text", checkFragmentedText],
  ["fragmented-binary", checkFragmentedBinary],
  ["large-binary-8MiB", checkLargeBinary],
  ["large-text-8MiB", checkLargeText],
  ["many-messages", checkManyMessages],
  ["ping", checkPing],
  ["close-1000", closeCheck(1000, "bye")],
  ["close-1001", closeCheck(1001, "")],
  ["close-4000-reason", closeCheck(4000, "custom code, reason ✓")],
  ["close-3999", closeCheck(3999, "")],
];

async function main(argv) {
  const args = argv.filter((a) => !a.startsWith("--"));
  if (args.length !== 1 || !args[0].startsWith("ws://")) {
    console.error("usage: node node_client.mjs ws://HOST:PORT/PATH [--no-compression]");
    return 2;
  }
  const compression = !argv.includes("--no-compression");
  let failed = 0;
  for (const [name, check] of CHECKS) {
    const label = `node-ws ${name}`;
    const start = performance.now();
    let client;
    try {
      client = await Client.open(args[0], compression);
      await check(client);
      console.log(`PASS ${label} (${((performance.now() - start) / 1000).toFixed(2)} s)`);
    } catch (err) {
      failed += 1;
      const why = err instanceof CheckFailed ? err.message : `${err.name}: ${err.message}`;
      console.log(`FAIL ${label}: ${why}`);
      client?.ws.terminate();
    }
  }
  console.log(`node-ws: ${CHECKS.length - failed} passed, ${failed} failed`);
  return failed ? 1 : 0;
}

process.exitCode = await main(process.argv.slice(2));
