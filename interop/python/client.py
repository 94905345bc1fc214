"""Interop client on the Python `websockets` library: a fixed exchange with an
echo server, every echo checked byte for byte, then the close code.

usage: client.py URL [--deflate] [--ca CERT.pem]
"""

import argparse
import asyncio
import os
import ssl
import sys

from websockets.asyncio.client import connect


async def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("url")
    ap.add_argument("--deflate", action="store_true")
    ap.add_argument("--ca")
    args = ap.parse_args()

    ctx = None
    if args.url.startswith("wss://"):
        ctx = ssl.create_default_context(cafile=args.ca)
    async with connect(
        args.url,
        compression="deflate" if args.deflate else None,
        ssl=ctx,
        max_size=None,
        open_timeout=10,
    ) as ws:
        extensions = ws.response.headers.get("Sec-WebSocket-Extensions", "")
        if ("permessage-deflate" in extensions) != args.deflate:
            print(f"FAIL: negotiated extensions {extensions!r}, deflate wanted: {args.deflate}")
            return 1
        messages = [
            "hello interop ✓",
            bytes(range(256)),
            "compressible text " * 12_000,
            os.urandom(1 << 20),
            "",
            b"",
        ]
        for m in messages:
            await ws.send(m)
            echo = await ws.recv()
            if type(echo) is not type(m) or echo != m:
                print(f"FAIL: echo of a {len(m)}-byte {type(m).__name__} differs")
                return 1
        # A fragmented text message (websockets fragments an iterable).
        await ws.send(["frag one, ", "frag two, ", "frag three ✓"])
        echo = await ws.recv()
        if echo != "frag one, frag two, frag three ✓":
            print(f"FAIL: fragmented echo differs: {echo!r}")
            return 1
        await ws.close(code=4000, reason="bye")
        rcvd = ws.protocol.close_rcvd
        if rcvd is None or rcvd.code != 4000:
            print(f"FAIL: expected close code 4000 echoed, got {rcvd}")
            return 1
    print(f"ok: python websockets client -> {args.url} (deflate {args.deflate})")
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
