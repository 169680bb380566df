"""RSS per idle connection of a running wss-net server, plain or TLS.

Usage: python idle_tls_rss.py PID URL N [CAFILE]

Opens N WebSocket connections to URL (wss:// needs CAFILE, the certificate to trust), each
after one echo round trip, leaves them idle, and reads the server's RSS (/proc/PID/status)
before and after. Prints one JSON line. Clients run in this process, so only the server's
memory is counted.
"""

import asyncio
import json
import ssl
import sys

import websockets


def rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise RuntimeError("no VmRSS")


async def main():
    pid, url, n = int(sys.argv[1]), sys.argv[2], int(sys.argv[3])
    ctx = ssl.create_default_context(cafile=sys.argv[4]) if url.startswith("wss") else None
    await asyncio.sleep(0.5)
    before = rss_kib(pid)
    conns = []
    for i in range(0, n, 100):
        batch = [websockets.connect(url, ssl=ctx, ping_interval=None, max_queue=1)
                 for _ in range(min(100, n - i))]
        opened = await asyncio.gather(*batch)
        for ws in opened:
            await ws.send("x")
            await ws.recv()
        conns.extend(opened)
    await asyncio.sleep(2)
    after = rss_kib(pid)
    print(json.dumps({"url": url, "connections": len(conns), "rss_before_kib": before,
                      "rss_after_kib": after,
                      "kib_per_connection": round((after - before) / len(conns), 2)}))
    for ws in conns:
        await ws.close()


asyncio.run(main())
