#!/usr/bin/env python3
"""Writes the seed corpora under fuzz/corpus/<target>/ (stdlib only; rerun after editing).

The seeds are the examples of RFC 6455 (§1.2, §1.3, §4, §5.7) and the cases the unit tests
pin, in the input format of fuzz/src/drivers.rs: the targets that take split points start
with one control byte (bits 0-2: largest read, 1 byte .. all at once; bits 3-6: seed;
bit 7: small limits). Each seed is written once per control byte in CONTROLS, so the stable
replay test walks every read size over each example.

usage: python3 fuzz/make_seeds.py   (replaces the seed_* files, keeps any other corpus file)
"""

import base64
import hashlib
import os
import struct

HERE = os.path.dirname(os.path.abspath(__file__))
CONTROLS = {"all": 0x07, "bytewise": 0x00, "small": 0x0B, "mixed": 0x35, "limits": 0x87}

RFC_KEY = "dGhlIHNhbXBsZSBub25jZQ=="  # base64 of "the sample nonce" (RFC 6455 §1.3)
RFC_ACCEPT = "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
MASK = bytes([0x37, 0xFA, 0x21, 0x3D])  # the masking key of RFC 6455 §5.7


def frame(opcode, payload=b"", fin=True, mask=MASK, rsv=0, length=None):
    """One frame; `length` overrides the announced payload length (for broken frames)."""
    n = len(payload) if length is None else length
    out = bytearray([(0x80 if fin else 0) | (rsv << 4) | opcode])
    bit = 0x80 if mask is not None else 0
    if n < 126:
        out.append(bit | n)
    elif n < 1 << 16:
        out += bytes([bit | 126]) + struct.pack(">H", n)
    else:
        out += bytes([bit | 127]) + struct.pack(">Q", n)
    if mask is not None:
        out += mask
        payload = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
    return bytes(out + payload)


def close(code, reason=b"", mask=MASK):
    return frame(0x8, struct.pack(">H", code) + reason, mask=mask)


def head(*lines):
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


RFC_REQUEST = head(
    "GET /chat HTTP/1.1",
    "Host: server.example.com",
    "Upgrade: websocket",
    "Connection: Upgrade",
    f"Sec-WebSocket-Key: {RFC_KEY}",
    "Origin: http://example.com",
    "Sec-WebSocket-Protocol: chat, superchat",
    "Sec-WebSocket-Version: 13",
)

REQUEST_HEADS = {
    "rfc_1_3": RFC_REQUEST,
    "rfc_1_3_then_frame": RFC_REQUEST + frame(0x1, b"Hello"),
    "minimal": head(
        "GET / HTTP/1.1",
        "Host: a",
        "Upgrade: websocket",
        "Connection: keep-alive, Upgrade",
        "Sec-WebSocket-Key: AQIDBAUGBwgJCgsMDQ4PEA==",
        "Sec-WebSocket-Version: 13",
    ),
    "query_and_case": head(
        "GET /ws?room=a%20b&x=1&x=2&flag&plus=a+b HTTP/1.1",
        "host: a:8080",
        "UPGRADE: WebSocket",
        "connection: upgrade",
        f"sec-websocket-key: {RFC_KEY}",
        "sec-websocket-version: 13",
        "Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits",
    ),
    "bad_version_426": head(
        "GET /chat HTTP/1.1",
        "Host: a",
        "Upgrade: websocket",
        "Connection: Upgrade",
        f"Sec-WebSocket-Key: {RFC_KEY}",
        "Sec-WebSocket-Version: 8",
    ),
    "duplicate_key": head(
        "GET /chat HTTP/1.1",
        "Host: a",
        "Upgrade: websocket",
        "Connection: Upgrade",
        f"Sec-WebSocket-Key: {RFC_KEY}",
        "Sec-WebSocket-Key: AQIDBAUGBwgJCgsMDQ4PEA==",
        "Sec-WebSocket-Version: 13",
    ),
    "short_key": head(
        "GET /chat HTTP/1.1",
        "Host: a",
        "Upgrade: websocket",
        "Connection: Upgrade",
        "Sec-WebSocket-Key: AQID",
        "Sec-WebSocket-Version: 13",
    ),
    "post": head("POST /chat HTTP/1.1", "Host: a", "Upgrade: websocket", "Content-Length: 0"),
    "http10": head("GET / HTTP/1.0", "Host: a"),
    "plain_get_pipelined": head("GET /index.html HTTP/1.1", "Host: a") + head("GET /b HTTP/1.1", "Host: a"),
    "folded_header": b"GET / HTTP/1.1\r\nHost: a\r\nX-A: 1\r\n  continued\r\n\r\n",
    "bare_lf": b"GET / HTTP/1.1\nHost: a\n\n",
    "garbage": b"\x16\x03\x01\x00\xa5\x01\x00\x00\xa1\x03\x03",
    "many_headers": head("GET / HTTP/1.1", *[f"X-{i}: {i}" for i in range(70)]),
    "long_value": head("GET / HTTP/1.1", "Host: a", "X-Long: " + "v" * 400),
    "unfinished": b"GET /chat HTTP/1.1\r\nHost: a\r\nUpgrade: webso",
}

FRAMES = {
    # RFC 6455 §5.7, verbatim.
    "rfc_unmasked_hello": bytes([0x81, 0x05]) + b"Hello",
    "rfc_masked_hello": bytes([0x81, 0x85, 0x37, 0xFA, 0x21, 0x3D, 0x7F, 0x9F, 0x4D, 0x51, 0x58]),
    "rfc_fragment_1": bytes([0x01, 0x03]) + b"Hel",
    "rfc_fragment_2": bytes([0x80, 0x02]) + b"lo",
    "rfc_ping": bytes([0x89, 0x05]) + b"Hello",
    "rfc_masked_pong": bytes([0x8A, 0x85, 0x37, 0xFA, 0x21, 0x3D, 0x7F, 0x9F, 0x4D, 0x51, 0x58]),
    "rfc_256_binary_header": bytes([0x82, 0x7E, 0x01, 0x00]),
    "rfc_64k_binary_header": bytes([0x82, 0x7F, 0, 0, 0, 0, 0, 1, 0, 0]),
    "masked_64bit_len": bytes([0x82, 0xFF, 0, 0, 0, 0, 0, 1, 0, 0]) + MASK,
    "len_top_bit": bytes([0x82, 0x7F, 0x80, 0, 0, 0, 0, 0, 0, 0]),
    "len_2_63_minus_1": bytes([0x82, 0xFF, 0x7F, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF]) + MASK,
    "reserved_opcode_3": bytes([0x83, 0x80]) + MASK,
    "reserved_opcode_b": bytes([0x8B, 0x80]) + MASK,
    "rsv1": bytes([0xC1, 0x80]) + MASK,
    "fragmented_ping": bytes([0x09, 0x80]) + MASK,
    "ping_126": bytes([0x89, 0xFE, 0x00, 0x7E]) + MASK,
    "empty_close": bytes([0x88, 0x80]) + MASK,
    "noncanonical_len": bytes([0x81, 0xFE, 0x00, 0x05]) + MASK + b"Hello",
}

HELLO = frame(0x1, b"Hello")
SERVER_STREAMS = {
    "rfc_masked_hello": FRAMES["rfc_masked_hello"],
    "fragmented_hello": frame(0x1, b"Hel", fin=False) + frame(0x0, b"lo"),
    "ping_between_fragments": frame(0x1, b"Hel", fin=False) + frame(0x9, b"ping") + frame(0x0, b"lo"),
    "binary_256": frame(0x2, bytes(range(256))),
    "binary_65536": frame(0x2, bytes(65536)),
    "text_then_close_1000": HELLO + close(1000, b"bye"),
    "close_4000_utf8_reason": close(4000, "déjà vu".encode()),
    "close_no_code": frame(0x8, b""),
    "close_one_byte": frame(0x8, b"\x03"),
    "close_code_1005": close(1005),
    "close_code_999": close(999),
    "close_bad_reason": close(1000, b"\xff\xfe"),
    "pong_unsolicited": frame(0xA, b"x") + HELLO,
    "utf8_split_over_fragments": frame(0x1, "a☃".encode()[:2], fin=False) + frame(0x0, "a☃".encode()[2:]),
    "utf8_invalid_fail_fast": frame(0x1, b"ok \xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5\xed\xa0\x80 more"),
    "utf8_truncated_at_end": frame(0x1, b"\xe2\x98"),
    "continuation_without_start": frame(0x0, b"x"),
    "text_while_fragmenting": frame(0x1, b"a", fin=False) + frame(0x1, b"b"),
    "unmasked_from_client": frame(0x1, b"Hello", mask=None),
    "rsv_bits": frame(0x1, b"Hello", rsv=4),
    "reserved_opcode": frame(0x3, b""),
    "ping_too_big": frame(0x9, bytes(126)),
    "frame_over_limit_header_only": frame(0x2, b"", length=1 << 40),
    "many_small_fragments": frame(0x2, b"a", fin=False) + b"".join(frame(0x0, b"b", fin=False) for _ in range(40)) + frame(0x0, b"c"),
    "after_close_ignored": close(1000) + HELLO,
}

RFC_RESPONSE = head(
    "HTTP/1.1 101 Switching Protocols",
    "Upgrade: websocket",
    "Connection: Upgrade",
    f"Sec-WebSocket-Accept: {RFC_ACCEPT}",
)
SERVER_FRAMES = frame(0x1, b"Hello", mask=None) + frame(0x9, b"p", mask=None) + close(1000, mask=None)
CLIENT_RESPONSES = {
    "rfc_101": RFC_RESPONSE,
    "rfc_101_with_frames": RFC_RESPONSE + SERVER_FRAMES,
    "rfc_101_unoffered_protocol": head(
        "HTTP/1.1 101 Switching Protocols",
        "Upgrade: websocket",
        "Connection: Upgrade",
        f"Sec-WebSocket-Accept: {RFC_ACCEPT}",
        "Sec-WebSocket-Protocol: chat",
    ),
    "unoffered_extension": head(
        "HTTP/1.1 101 Switching Protocols",
        "Upgrade: websocket",
        "Connection: Upgrade",
        f"Sec-WebSocket-Accept: {RFC_ACCEPT}",
        "Sec-WebSocket-Extensions: permessage-deflate",
    ),
    "wrong_accept": head(
        "HTTP/1.1 101 Switching Protocols",
        "Upgrade: websocket",
        "Connection: Upgrade",
        "Sec-WebSocket-Accept: " + base64.b64encode(hashlib.sha1(b"nope").digest()).decode(),
    ),
    "refused_400": head("HTTP/1.1 400 Bad Request", "Content-Length: 0"),
    "missing_upgrade": head("HTTP/1.1 101 Switching Protocols", "Connection: Upgrade", f"Sec-WebSocket-Accept: {RFC_ACCEPT}"),
    "masked_frame_from_server": RFC_RESPONSE + frame(0x1, b"Hello"),
    "http10_101": head("HTTP/1.0 101 Switching Protocols", "Upgrade: websocket", "Connection: Upgrade", f"Sec-WebSocket-Accept: {RFC_ACCEPT}"),
}


def write(target, seeds, with_control=True):
    folder = os.path.join(HERE, "corpus", target)
    os.makedirs(folder, exist_ok=True)
    for name in os.listdir(folder):
        if name.startswith("seed_"):
            os.remove(os.path.join(folder, name))
    count = 0
    for name, data in seeds.items():
        variants = CONTROLS.items() if with_control else [("raw", None)]
        if with_control and len(data) > 4096:
            # Large seeds only twice: keeps the committed corpus small.
            variants = [(k, v) for k, v in CONTROLS.items() if k in ("all", "mixed")]
        for label, control in variants:
            body = data if control is None else bytes([control]) + data
            with open(os.path.join(folder, f"seed_{name}.{label}"), "wb") as f:
                f.write(body)
            count += 1
    print(f"{target}: {count} seeds")


def main():
    # The RFC's accept key is what the handshake computes for its nonce.
    expected = base64.b64encode(hashlib.sha1((RFC_KEY + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11").encode()).digest())
    assert expected.decode() == RFC_ACCEPT
    write("request_head", REQUEST_HEADS)
    write("frame_header", FRAMES, with_control=False)
    write("server_connection", SERVER_STREAMS)
    write("client_handshake", CLIENT_RESPONSES)


if __name__ == "__main__":
    main()
