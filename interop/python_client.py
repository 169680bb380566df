#!/usr/bin/env python3
"""Interop checks with Python `websockets` as the client of an echo server.

usage: python_client.py ws://HOST:PORT/PATH [--no-compression]

Each check opens its own connection, prints one `PASS name` or `FAIL name: why`
line, and the script exits 1 when any check failed (2 on bad usage). The server
must echo every message back unchanged, text as text and binary as binary.
"""

import sys
import time
import traceback

from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect

TIMEOUT = 20.0
LARGE = 8 * 1024 * 1024
# Allow the 8 MiB echo back in (the client's default limit is 1 MiB).
MAX_SIZE = 16 * 1024 * 1024


class CheckFailed(Exception):
    """A check saw something other than what it expects."""


def expect(cond, what):
    if not cond:
        raise CheckFailed(what)


def describe(value):
    """Short form of a message for failure lines: never print 8 MiB."""
    kind = "text" if isinstance(value, str) else "binary"
    return f"{kind} of {len(value)} {'chars' if kind == 'text' else 'bytes'}: {value[:40]!r}"


def echo_once(ws, sent, expected=None):
    expected = sent if expected is None else expected
    ws.send(sent)
    got = ws.recv(timeout=TIMEOUT)
    expect(type(got) is type(expected), f"sent {describe(expected)}, got back {describe(got)}")
    expect(got == expected, f"echo differs: sent {describe(expected)}, got {describe(got)}")


def close_cleanly(ws, code=1000, reason=""):
    ws.close(code, reason)
    expect(ws.close_code is not None, "connection not closed after close()")


def check_text(ws):
    for text in ["hello", "", "héllo wörld ✓ 𝄞 日本語", "x" * 125, "y" * 126, "z" * 65536]:
        echo_once(ws, text)
    close_cleanly(ws)


def check_binary(ws):
    for data in [b"\x00\x01\x02", b"", bytes(range(256)) * 4, b"\xff" * 70000]:
        echo_once(ws, data)
    close_cleanly(ws)


def check_fragmented_text(ws):
    # websockets sends each item of an iterable as one frame of a single message.
    ws.send(["frag", "mented ", "text ✓"])
    got = ws.recv(timeout=TIMEOUT)
    expect(got == "fragmented text ✓", f"got {describe(got)}")
    # A code point split across two frames must be put back together, not rejected.
    snowman = "☃".encode()
    ws.send([b"a" + snowman[:1], snowman[1:2], snowman[2:] + b"z"], text=True)
    got = ws.recv(timeout=TIMEOUT)
    expect(got == "a☃z", f"split code point: got {describe(got)}")
    close_cleanly(ws)


def check_fragmented_binary(ws):
    chunks = [bytes([i]) * (1000 + i) for i in range(50)]
    ws.send(chunks)
    got = ws.recv(timeout=TIMEOUT)
    expect(got == b"".join(chunks), f"got {describe(got)}")
    close_cleanly(ws)


def check_large_binary(ws):
    data = bytes(range(251)) * (LARGE // 251) + b"\x07" * (LARGE % 251)
    echo_once(ws, data)
    close_cleanly(ws)


def check_large_text(ws):
    # 19 bytes per repetition: 16 ASCII ones and a 3-byte euro sign.
    text = "0123456789abcdef€" * (LARGE // 19)
    echo_once(ws, text)
    close_cleanly(ws)


def check_many_messages(ws):
    for i in range(1000):
        ws.send(f"message {i}")
    for i in range(1000):
        got = ws.recv(timeout=TIMEOUT)
        expect(got == f"message {i}", f"message {i}: got {describe(got)}")
    close_cleanly(ws)


def check_ping(ws):
    pong = ws.ping(b"are you there")
    expect(pong.wait(TIMEOUT), "no pong within the timeout")
    echo_once(ws, "still open after the ping")
    close_cleanly(ws)


def make_close_check(code, reason):
    def check(ws):
        echo_once(ws, "before close")
        ws.close(code, reason)
        # RFC 6455 5.5.1: the answering close frame usually echoes the code it received.
        expect(ws.close_code == code, f"server answered close {code} with {ws.close_code}")
        try:
            ws.send("after close")
        except ConnectionClosed:
            pass
        else:
            raise CheckFailed("send after close did not raise ConnectionClosed")

    return check


CHECKS = [
    ("text", check_text),
    ("binary", check_binary),
    ("fragmented-text", check_fragmented_text),
    ("fragmented-binary", check_fragmented_binary),
    ("large-binary-8MiB", check_large_binary),
    ("large-text-8MiB", check_large_text),
    ("many-messages", check_many_messages),
    ("ping", check_ping),
    ("close-1000", make_close_check(1000, "bye")),
    ("close-1001", make_close_check(1001, "")),
    ("close-4000-reason", make_close_check(4000, "custom code, reason ✓")),
    ("close-3999", make_close_check(3999, "")),
]


def main(argv):
    args = [a for a in argv if not a.startswith("--")]
    if len(args) != 1 or not args[0].startswith("ws://"):
        print("usage: python_client.py ws://HOST:PORT/PATH [--no-compression]", file=sys.stderr)
        return 2
    url = args[0]
    compression = None if "--no-compression" in argv else "deflate"
    failed = 0
    for name, check in CHECKS:
        start = time.monotonic()
        label = f"python-websockets {name}"
        try:
            with connect(
                url,
                compression=compression,
                max_size=MAX_SIZE,
                open_timeout=TIMEOUT,
                close_timeout=TIMEOUT,
            ) as ws:
                check(ws)
        except CheckFailed as err:
            failed += 1
            print(f"FAIL {label}: {err}", flush=True)
            continue
        except Exception as err:  # any library error is a failed check, with its cause shown
            failed += 1
            detail = "".join(traceback.format_exception_only(type(err), err)).strip()
            print(f"FAIL {label}: {detail}", flush=True)
            continue
        print(f"PASS {label} ({time.monotonic() - start:.2f} s)", flush=True)
    total = len(CHECKS)
    print(f"python-websockets: {total - failed} passed, {failed} failed", flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
