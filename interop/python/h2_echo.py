"""WebSockets over HTTP/2 (RFC 8441) from Python's `h2` library against
`volley echo`: the client waits for SETTINGS_ENABLE_CONNECT_PROTOCOL, opens
three extended CONNECT streams on one TLS connection (ALPN h2), echoes text
and binary messages (masked client frames, up to 64 KiB) byte for byte, then
checks that a stream reset mid-message ends only its own stream and that a
CONNECT without :protocol is refused with 400.

Usage: h2_echo.py HOST PORT --ca cert.pem
"""

import argparse
import os
import socket
import ssl

import h2.config
import h2.connection
import h2.events
import h2.settings

from wsframe import frame, take_message


class Client:
    def __init__(self, host, port, ca):
        ctx = ssl.create_default_context(cafile=ca)
        ctx.set_alpn_protocols(["h2"])
        self.sock = ctx.wrap_socket(socket.create_connection((host, port)), server_hostname=host)
        assert self.sock.selected_alpn_protocol() == "h2"
        self.sock.settimeout(10)
        self.conn = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True))
        self.conn.initiate_connection()
        self.flush()
        self.authority = f"{host}:{port}"
        self.data = {}
        self.status = {}
        self.reset = set()
        self.settings = None
        while self.settings is None:
            self.pump()

    def flush(self):
        self.sock.sendall(self.conn.data_to_send())

    def pump(self):
        chunk = self.sock.recv(65536)
        if not chunk:
            raise RuntimeError("connection closed")
        for ev in self.conn.receive_data(chunk):
            if isinstance(ev, h2.events.RemoteSettingsChanged):
                self.settings = {k: v.new_value for k, v in ev.changed_settings.items()}
            elif isinstance(ev, h2.events.ResponseReceived):
                self.status[ev.stream_id] = int(dict(ev.headers)[b":status"])
            elif isinstance(ev, h2.events.DataReceived):
                self.data.setdefault(ev.stream_id, bytearray()).extend(ev.data)
                self.conn.acknowledge_received_data(ev.flow_controlled_length, ev.stream_id)
            elif isinstance(ev, h2.events.StreamReset):
                self.reset.add(ev.stream_id)
        self.flush()

    def open(self, headers):
        sid = self.conn.get_next_available_stream_id()
        self.conn.send_headers(sid, headers)
        self.flush()
        while sid not in self.status and sid not in self.reset:
            self.pump()
        return sid, self.status.get(sid)

    def send(self, sid, data):
        # Respect flow control: send in windows.
        while data:
            window = self.conn.local_flow_control_window(sid)
            n = min(len(data), window, self.conn.max_outbound_frame_size)
            if n == 0:
                self.pump()
                continue
            self.conn.send_data(sid, data[:n])
            data = data[n:]
            self.flush()

    def message(self, sid):
        while True:
            got = take_message(self.data.setdefault(sid, bytearray()))
            if got is not None:
                return got
            self.pump()


def main():
    p = argparse.ArgumentParser()
    p.add_argument("host")
    p.add_argument("port", type=int)
    p.add_argument("--ca", required=True)
    a = p.parse_args()
    c = Client(a.host, a.port, a.ca)
    assert c.settings.get(h2.settings.SettingCodes.ENABLE_CONNECT_PROTOCOL) == 1, c.settings
    base = [(":method", "CONNECT"), (":protocol", "websocket"), (":scheme", "https"),
            (":authority", c.authority), (":path", "/"), ("sec-websocket-version", "13")]
    streams = []
    for _ in range(3):
        sid, status = c.open(base)
        assert status == 200, f"extended CONNECT answered {status}"
        streams.append(sid)
    for size in [0, 1, 125, 126, 4096, 65535, 65536]:
        for opcode in (0x1, 0x2):
            for sid in streams:
                payload = ("é" * (size >> 1) + ("x" if size & 1 else "")).encode() if opcode == 1 else os.urandom(size)
                c.send(sid, frame(opcode, payload))
                assert c.message(sid) == (opcode, payload), f"stream {sid}: {size} bytes came back wrong"
    print("echo: 3 streams x 14 messages byte for byte")
    # A reset mid-message ends only that stream.
    c.send(streams[0], frame(0x2, os.urandom(1000))[:300])
    c.conn.reset_stream(streams[0], error_code=8)  # CANCEL
    c.flush()
    c.send(streams[1], frame(0x1, b"after the reset"))
    assert c.message(streams[1]) == (0x1, b"after the reset")
    # CONNECT without :protocol asks for a tunnel: 400.
    sid, status = c.open([(":method", "CONNECT"), (":authority", c.authority)])
    assert status == 400, f"plain CONNECT: {status}"
    # A :scheme that is not HTTP: 400.
    sid, status = c.open([(k, "ftp" if k == ":scheme" else v) for k, v in base])
    assert status == 400, f":scheme ftp: {status}"
    print("bad cases: a reset mid-message ends only its stream; CONNECT without :protocol and :scheme ftp are 400")


main()
