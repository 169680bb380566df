// Echo server on Node's `ws` (pinned in package.json), the peer benches/deflate.sh measures wss
// against. Every text or binary message is sent back as it came (same type); pings are answered
// by ws itself. Prints `listening on ws://HOST:PORT/` once accepting, the readiness line of the
// `wss` binary and the Rust peers.
//
// Usage: node ws-echo.mjs [--host 127.0.0.1] [--port 0] [--deflate on|off]
//                         [--threshold 64] [--level 1]
//
// The deflate defaults follow the `wss` binary's (wss-proto DeflateConfig::default()), not ws's,
// so both servers do the same work: threshold 64 bytes (ws: 1024, which would leave every chat
// message uncompressed), zlib level 1 (ws: zlib's default, 6), memLevel 8. Window bits and
// context takeover keep ws's defaults, which are wss's too: 2^15 windows and context takeover
// both ways unless the client's offer asks otherwise (ws accepts server_no_context_takeover and
// a smaller server_max_window_bits only while these options stay unset). `--threshold 1024
// --level 6` gives ws's own defaults.
import { WebSocketServer } from 'ws';

function parseArgs(argv) {
  const opts = { host: '127.0.0.1', port: 0, deflate: 'on', threshold: 64, level: 1 };
  const names = { '--host': 'host', '--port': 'port', '--deflate': 'deflate', '--threshold': 'threshold', '--level': 'level' };
  for (let i = 0; i < argv.length; i += 2) {
    const key = names[argv[i]];
    if (!key || i + 1 >= argv.length) {
      console.error(`usage: node ws-echo.mjs [--host H] [--port P] [--deflate on|off] [--threshold BYTES] [--level 0-9] (bad: ${argv[i]})`);
      process.exit(2);
    }
    opts[key] = key === 'host' || key === 'deflate' ? argv[i + 1] : Number(argv[i + 1]);
  }
  if (!Number.isInteger(opts.port) || !Number.isInteger(opts.threshold) || !(opts.level >= 0 && opts.level <= 9)) {
    console.error('--port and --threshold must be integers, --level 0..9');
    process.exit(2);
  }
  if (!['on', 'off'].includes(opts.deflate)) {
    console.error('--deflate must be on or off');
    process.exit(2);
  }
  // Loopback only, as everything in benches/.
  if (!/^127\.\d+\.\d+\.\d+$/.test(opts.host) && opts.host !== '::1') {
    console.error('--host must be a loopback address');
    process.exit(2);
  }
  return opts;
}

const opts = parseArgs(process.argv.slice(2));
const perMessageDeflate = opts.deflate === 'on' && {
  threshold: opts.threshold,
  zlibDeflateOptions: { level: opts.level, memLevel: 8 },
  // ws's default (10 zlib jobs at once per process); stated so the setting is on record.
  concurrencyLimit: 10,
};

const wss = new WebSocketServer({
  host: opts.host,
  port: opts.port,
  perMessageDeflate,
  maxPayload: 64 * 1024 * 1024,
  clientTracking: false,
});

wss.on('connection', (ws) => {
  ws.on('message', (data, isBinary) => ws.send(data, { binary: isBinary }));
  ws.on('error', () => ws.terminate());
});

wss.on('listening', () => {
  const { address, port } = wss.address();
  const host = address.includes(':') ? `[${address}]` : address;
  console.log(`listening on ws://${host}:${port}/ (ws ${opts.deflate === 'on' ? `perMessageDeflate threshold=${opts.threshold} level=${opts.level}` : 'perMessageDeflate off'}, zlib ${process.versions.zlib})`);
});

// A benchmark server has nothing to save: leave at once, whatever is connected.
const stop = () => process.exit(0);
process.on('SIGTERM', stop);
process.on('SIGINT', stop);
