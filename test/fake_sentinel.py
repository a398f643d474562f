#!/usr/bin/env python3
"""A scripted stand-in for Redis Sentinel, for tests that need a sentinel to give a
wrong answer. Python 3 standard library only.

    python3 test/fake_sentinel.py --port N --answers 127.0.0.1:7001,127.0.0.1:7000

SENTINEL get-master-addr-by-name <any> answers the addresses of --answers in turn (the
last one from then on); SUBSCRIBE confirms and keeps the connection open; PING answers
PONG; anything else gets an error. It prints nothing; it is ready when the port accepts.
"""
import argparse
import asyncio


async def read_command(reader):
    """One RESP array of bulk strings, or None at EOF."""
    line = await reader.readline()
    if not line:
        return None
    if not line.startswith(b"*"):
        return [line.strip().decode()]  # inline command
    args = []
    for _ in range(int(line[1:])):
        size = int((await reader.readline())[1:])
        args.append((await reader.readexactly(size + 2))[:-2].decode())
    return args


def bulk(s):
    b = s.encode()
    return b"$%d\r\n%s\r\n" % (len(b), b)


async def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--answers", required=True)
    args = ap.parse_args()
    answers = [a.rsplit(":", 1) for a in args.answers.split(",")]
    asked = [0]

    async def serve(reader, writer):
        try:
            while True:
                cmd = await read_command(reader)
                if cmd is None:
                    break
                name = cmd[0].upper()
                if name == "SENTINEL" and len(cmd) == 3:
                    host, port = answers[min(asked[0], len(answers) - 1)]
                    asked[0] += 1
                    writer.write(b"*2\r\n" + bulk(host) + bulk(port))
                elif name == "SUBSCRIBE":
                    for i, ch in enumerate(cmd[1:]):
                        writer.write(b"*3\r\n" + bulk("subscribe") + bulk(ch) + b":%d\r\n" % (i + 1))
                elif name == "PING":
                    writer.write(b"+PONG\r\n")
                else:
                    writer.write(b"-ERR unknown command\r\n")
                await writer.drain()
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            writer.close()

    server = await asyncio.start_server(serve, "127.0.0.1", args.port, reuse_address=True)
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    asyncio.run(main())
