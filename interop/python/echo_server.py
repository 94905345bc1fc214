"""Echo server on the Python `websockets` library, for volley's client.

usage: echo_server.py PORT [--cert CERT.pem --key KEY.pem]
Accepts permessage-deflate when the client offers it.
"""

import argparse
import asyncio
import ssl

from websockets.asyncio.server import serve


async def echo(ws):
    async for message in ws:
        await ws.send(message)


async def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("port", type=int)
    ap.add_argument("--cert")
    ap.add_argument("--key")
    args = ap.parse_args()
    ctx = None
    if args.cert:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(args.cert, args.key)
    async with serve(echo, "127.0.0.1", args.port, ssl=ctx, max_size=None, compression="deflate") as server:
        await server.serve_forever()


if __name__ == "__main__":
    asyncio.run(main())
