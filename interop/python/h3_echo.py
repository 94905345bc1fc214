"""WebSockets over HTTP/3 (RFC 9220) from aioquic's H3Connection against
`volley echo` (or `volley serve`'s /ws path for --path): extended CONNECT
streams on one QUIC connection echoing text and binary messages (masked
client frames, up to 64 KiB) checked byte for byte, then the bad cases:
a missing Sec-WebSocket-Version (426), :scheme http and :protocol chat
(400), a stream reset in the middle of a
message (the other streams go on), and DATA before HEADERS (the connection
is closed with H3_FRAME_UNEXPECTED and a new one is served).

Usage: h3_echo.py HOST PORT --ca cert.pem [--path /]
"""

import argparse
import asyncio
import os

from aioquic.asyncio.client import connect
from aioquic.asyncio.protocol import QuicConnectionProtocol
from aioquic.h3.connection import H3_ALPN, H3Connection
from aioquic.h3.events import DataReceived, HeadersReceived
from aioquic.quic.configuration import QuicConfiguration
from aioquic.quic.events import ConnectionTerminated, StreamReset

from wsframe import frame, take_message

ENABLE_CONNECT_PROTOCOL = 0x08


class Client(QuicConnectionProtocol):
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.h3 = H3Connection(self._quic)
        self.queues = {}
        self.terminated = asyncio.get_event_loop().create_future()

    def quic_event_received(self, event):
        if isinstance(event, ConnectionTerminated) and not self.terminated.done():
            self.terminated.set_result(event.error_code)
        for ev in self.h3.handle_event(event):
            if isinstance(ev, (HeadersReceived, DataReceived)) and ev.stream_id in self.queues:
                self.queues[ev.stream_id].put_nowait(ev)
        if isinstance(event, StreamReset) and event.stream_id in self.queues:
            self.queues[event.stream_id].put_nowait(event)

    async def settings(self):
        for _ in range(200):
            if self.h3.received_settings is not None:
                return self.h3.received_settings
            await asyncio.sleep(0.01)
        raise RuntimeError("no SETTINGS from the server")

    async def open(self, authority, path, headers=(), scheme=b"https", protocol=b"websocket"):
        sid = self._quic.get_next_available_stream_id()
        self.queues[sid] = asyncio.Queue()
        self.h3.send_headers(sid, [
            (b":method", b"CONNECT"), (b":protocol", protocol), (b":scheme", scheme),
            (b":authority", authority.encode()), (b":path", path.encode()),
        ] + list(headers))
        self.transmit()
        ev = await asyncio.wait_for(self.queues[sid].get(), 10)
        status = dict(ev.headers)[b":status"]
        return sid, int(status)

    def send(self, sid, data, end=False):
        self.h3.send_data(sid, data, end_stream=end)
        self.transmit()

    async def message(self, sid, buf):
        """The next WebSocket message on `sid` (buf: bytearray carried between calls)."""
        while True:
            got = take_message(buf)
            if got is not None:
                return got
            ev = await asyncio.wait_for(self.queues[sid].get(), 10)
            if not isinstance(ev, DataReceived):
                raise RuntimeError(f"stream {sid} ended: {ev}")
            buf += ev.data


async def main():
    p = argparse.ArgumentParser()
    p.add_argument("host")
    p.add_argument("port", type=int)
    p.add_argument("--ca", required=True)
    p.add_argument("--path", default="/")
    a = p.parse_args()
    authority = f"{a.host}:{a.port}"
    config = QuicConfiguration(is_client=True, alpn_protocols=H3_ALPN)
    config.load_verify_locations(a.ca)
    version = [(b"sec-websocket-version", b"13")]
    async with connect(a.host, a.port, configuration=config, create_protocol=Client) as client:
        settings = await client.settings()
        assert settings.get(ENABLE_CONNECT_PROTOCOL) == 1, f"SETTINGS: {settings}"
        streams = []
        for _ in range(3):
            sid, status = await client.open(authority, a.path, version)
            assert status == 200, f"extended CONNECT answered {status}"
            streams.append(sid)

        async def echo(sid):
            buf = bytearray()
            for size in [0, 1, 125, 126, 4096, 65535, 65536]:
                for opcode in (0x1, 0x2):
                    payload = ("é" * (size >> 1) + ("x" if size & 1 else "")).encode() if opcode == 1 else os.urandom(size)
                    client.send(sid, frame(opcode, payload))
                    got = await client.message(sid, buf)
                    assert got == (opcode, payload), f"stream {sid}: {size} bytes came back wrong"
            return buf

        bufs = await asyncio.gather(*(echo(s) for s in streams))
        print(f"echo: 3 streams x 14 messages byte for byte; settings {settings}")

        # Missing Sec-WebSocket-Version: 426.
        _, status = await client.open(authority, a.path)
        assert status == 426, f"no version: {status}"
        # :scheme http over QUIC (always TLS): 400.
        _, status = await client.open(authority, a.path, version, scheme=b"http")
        assert status == 400, f":scheme http: {status}"
        # :protocol other than websocket: 400.
        _, status = await client.open(authority, a.path, version, protocol=b"chat")
        assert status == 400, f":protocol chat: {status}"
        # A stream reset in the middle of a message: only that stream ends.
        partial = frame(0x2, os.urandom(1000))[:300]
        client.send(streams[0], partial)
        client._quic.reset_stream(streams[0], 0x10C)
        client.transmit()
        client.send(streams[1], frame(0x1, b"after the reset"))
        got = await client.message(streams[1], bufs[1])
        assert got == (0x1, b"after the reset"), got
        print("bad cases: 426 without a version; 400 for :scheme http and :protocol chat; a reset mid-message ends only its stream")

        # DATA before HEADERS on a request stream: H3_FRAME_UNEXPECTED closes the connection.
        sid = client._quic.get_next_available_stream_id()
        client._quic.send_stream_data(sid, b"\x00\x03abc")
        client.transmit()
        code = await asyncio.wait_for(client.terminated, 10)
        assert code == 0x105, f"closed with {code:#x}"
        print("DATA before HEADERS: connection closed with H3_FRAME_UNEXPECTED")

    # The server still serves a new connection.
    async with connect(a.host, a.port, configuration=config, create_protocol=Client) as client:
        await client.settings()
        sid, status = await client.open(authority, a.path, version)
        assert status == 200
        client.send(sid, frame(0x1, b"still serving"))
        assert await client.message(sid, bytearray()) == (0x1, b"still serving")
        print("a new connection is served")


asyncio.run(main())
