// A Node `ws` server for the wss-client interop tests (wss-client/tests/interop_servers.rs).
//
// usage: node node_server.mjs [--deflate]
//
// Listens on a free loopback port and prints `listening on ws://127.0.0.1:PORT/` once ready.
// It echoes every message (text as text, binary as binary), except these text commands:
//   frag:N:TEXT        sends TEXT back as one message split into N fragments
//   ping               sends a ping with payload "p1", then the text "pong:" + the pong's payload
//   close:CODE:REASON  closes with CODE and REASON
//   headers            sends back a JSON object of the request's headers and the subprotocol
// It offers the subprotocol "chat" when the client asks for it.
import { WebSocketServer } from "ws";

const deflate = process.argv.includes("--deflate");
const wss = new WebSocketServer({
  host: "127.0.0.1",
  port: 0,
  maxPayload: 16 * 1024 * 1024,
  perMessageDeflate: deflate ? { threshold: 0 } : false,
  handleProtocols: (protocols) => (protocols.has("chat") ? "chat" : false),
});

wss.on("listening", () => {
  process.stdout.write(`listening on ws://127.0.0.1:${wss.address().port}/\n`);
});

wss.on("connection", (ws, req) => {
  ws.on("pong", (data) => ws.send(`pong:${data.toString()}`));
  ws.on("message", (data, isBinary) => {
    if (!isBinary) {
      const text = data.toString();
      if (text.startsWith("frag:")) {
        const [, n, ...rest] = text.split(":");
        const body = Buffer.from(rest.join(":"));
        const parts = Number(n);
        const size = Math.ceil(body.length / parts);
        for (let i = 0; i < parts; i++) {
          const chunk = body.subarray(i * size, (i + 1) * size);
          ws.send(chunk, { binary: false, fin: i === parts - 1, compress: false });
        }
        return;
      }
      if (text === "ping") {
        ws.ping("p1");
        return;
      }
      if (text.startsWith("close:")) {
        const [, code, ...reason] = text.split(":");
        ws.close(Number(code), reason.join(":"));
        return;
      }
      if (text === "headers") {
        ws.send(JSON.stringify({ headers: req.headers, protocol: ws.protocol }));
        return;
      }
    }
    ws.send(data, { binary: isBinary });
  });
});
