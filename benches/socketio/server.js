// Socket.IO 4.8 relay, the peer of benches/cluster.sh: every "msg" event a client emits goes,
// unchanged, to every other client, on this process and, through @socket.io/redis-adapter, on
// every other process using the same Redis (Socket.IO's documented way to scale out).
//
// Usage: node server.js [--host 127.0.0.1] [--port 0] [--redis redis://127.0.0.1:6379]
// Without --redis it is a single node (Socket.IO's in-memory adapter). Once accepting it prints
// one line on stdout, as the wss binary does:
//   listening on ws://HOST:PORT/socket.io/?EIO=4&transport=websocket
// SIGINT/SIGTERM close everything and exit 0.
"use strict";

const { createServer } = require("node:http");
const { Server } = require("socket.io");
const { createAdapter } = require("@socket.io/redis-adapter");
const { createClient } = require("redis");

function parseArgs(argv) {
  const opts = { host: "127.0.0.1", port: 0, redis: null };
  for (let i = 0; i < argv.length; i += 2) {
    const [flag, value] = [argv[i], argv[i + 1]];
    if (value === undefined) throw new Error(`${flag} needs a value`);
    if (flag === "--host") opts.host = value;
    else if (flag === "--port") opts.port = Number.parseInt(value, 10);
    else if (flag === "--redis") opts.redis = value;
    else throw new Error(`unknown flag ${flag}`);
  }
  if (!Number.isInteger(opts.port) || opts.port < 0 || opts.port > 65535) {
    throw new Error("--port must be 0..65535");
  }
  return opts;
}

async function main() {
  const opts = parseArgs(process.argv.slice(2));
  const clients = [];
  const options = { transports: ["websocket"], serveClient: false };
  if (opts.redis) {
    // One publishing and one subscribing connection per process, as the adapter's docs show.
    const pub = createClient({ url: opts.redis });
    const sub = pub.duplicate();
    for (const c of [pub, sub]) c.on("error", (e) => console.error(`redis: ${e.message}`));
    await Promise.all([pub.connect(), sub.connect()]);
    clients.push(pub, sub);
    options.adapter = createAdapter(pub, sub);
  }
  const http = createServer();
  const io = new Server(http, options);
  io.on("connection", (socket) => {
    socket.on("msg", (data) => socket.broadcast.emit("msg", data));
  });
  http.listen(opts.port, opts.host, () => {
    const { port } = http.address();
    const host = opts.host.includes(":") ? `[${opts.host}]` : opts.host;
    process.stdout.write(`listening on ws://${host}:${port}/socket.io/?EIO=4&transport=websocket\n`);
  });
  const stop = () => {
    io.close();
    Promise.allSettled(clients.map((c) => c.quit())).finally(() => process.exit(0));
    // Never hang on a Redis that does not answer.
    setTimeout(() => process.exit(0), 2000).unref();
  };
  process.on("SIGINT", stop);
  process.on("SIGTERM", stop);
}

main().catch((e) => {
  console.error(`socketio server: ${e.message}`);
  process.exit(1);
});
