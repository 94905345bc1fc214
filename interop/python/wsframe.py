"""RFC 6455 frames for the HTTP/2 and HTTP/3 interop clients, which carry
WebSocket bytes on streams their libraries know nothing about: a masked
client frame, and the next whole unmasked server frame of a buffer."""

import os
import struct


def frame(opcode, payload):
    """A final, masked client frame."""
    mask = os.urandom(4)
    body = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
    n = len(payload)
    if n < 126:
        head = bytes([0x80 | opcode, 0x80 | n])
    elif n < 65536:
        head = bytes([0x80 | opcode, 0x80 | 126]) + struct.pack("!H", n)
    else:
        head = bytes([0x80 | opcode, 0x80 | 127]) + struct.pack("!Q", n)
    return head + mask + body


def take_message(buf):
    """Remove the first whole server frame from `buf` (a bytearray) and
    return (opcode, payload), or None while it is incomplete."""
    if len(buf) < 2:
        return None
    n, off = buf[1] & 0x7F, 2
    if n == 126:
        if len(buf) < 4:
            return None
        n, off = struct.unpack("!H", buf[2:4])[0], 4
    elif n == 127:
        if len(buf) < 10:
            return None
        n, off = struct.unpack("!Q", buf[2:10])[0], 10
    if len(buf) < off + n:
        return None
    opcode, payload = buf[0] & 0x0F, bytes(buf[off:off + n])
    del buf[:off + n]
    return opcode, payload
