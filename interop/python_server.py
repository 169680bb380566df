"""A Python `websockets` server for the wss-client interop tests.

usage: python python_server.py [--no-deflate]

Listens on a free loopback port and prints `listening on ws://127.0.0.1:PORT/` once ready.
It echoes every message (text as text, binary as binary), except these text commands:
  frag:N:TEXT        sends TEXT back as one message split into N fragments
  ping               sends a ping with payload "p1", then the text "pong:" + the pong's payload
  close:CODE:REASON  closes with CODE and REASON
  headers            sends back a JSON object of the request's headers and the subprotocol
It offers the subprotocol "chat" when the client asks for it. permessage-deflate is on
(websockets' default) unless --no-deflate.
"""

import asyncio
import json
import sys

from websockets.asyncio.server import serve
from websockets.exceptions import ConnectionClosed


async def handler(ws):
    try:
        await answer(ws)
    except ConnectionClosed:
        # A close with a code other than 1000/1001 is an error to websockets; here it is a
        # test of close codes, not worth a traceback.
        pass


async def answer(ws):
    async for message in ws:
        if isinstance(message, str):
            if message.startswith("frag:"):
                _, n, text = message.split(":", 2)
                parts = int(n)
                size = -(-len(text) // parts)
                await ws.send([text[i * size:(i + 1) * size] for i in range(parts)])
                continue
            if message == "ping":
                waiter = await ws.ping(b"p1")
                await waiter
                await ws.send("pong:p1")
                continue
            if message.startswith("close:"):
                _, code, reason = message.split(":", 2)
                await ws.close(int(code), reason)
                return
            if message == "headers":
                headers = {k.lower(): v for k, v in ws.request.headers.raw_items()}
                await ws.send(json.dumps({"headers": headers, "protocol": ws.subprotocol}))
                continue
        await ws.send(message)


def select_subprotocol(connection, offered):
    # With `subprotocols=` websockets refuses clients that offer none (400); this accepts them.
    return "chat" if "chat" in offered else None


async def main():
    compression = None if "--no-deflate" in sys.argv else "deflate"
    async with serve(
        handler,
        "127.0.0.1",
        0,
        max_size=16 * 1024 * 1024,
        compression=compression,
        select_subprotocol=select_subprotocol,
    ) as server:
        port = server.sockets[0].getsockname()[1]
        print(f"listening on ws://127.0.0.1:{port}/", flush=True)
        await asyncio.Future()


asyncio.run(main())
