#!/usr/bin/env python3
"""Test HTTP server: download ORIGIN and CALLBACK SINK for the integration tests and
the benchmarks. Python 3 standard library only (asyncio, HTTP/1.1 with keep-alive,
copes with thousands of concurrent slow connections).

    python3 test/origin.py --port N [--host 127.0.0.1]

Prints nothing special; it is ready as soon as the port accepts connections.

Origin endpoints
  GET /data/<n>            n bytes of deterministic content: byte i = i*31 % 251.
  GET /file/<name>         a file of test/data/ (image.png, image.jpg, image.gif,
                           image.bmp: 10x10 images; doc.pdf; text.txt; broken.jpg and
                           broken.png: right magic, unusable header). 404 if missing.
      Body options for /data and /file (query string):
        delay_ms=D         wait D ms before sending the headers
        chunk=C            send the body in C-byte writes ...
        chunk_delay_ms=D   ... with D ms between them (slow bodies)
        gzip=1             gzip the body (Content-Encoding: gzip), but only when the
                           request's Accept-Encoding contains "gzip"
        type=<mime>        Content-Type (default application/octet-stream, or a
                           guess from the file name for /file)
        lie=<len>          claim Content-Length <len>, send the real body, close
        reset_after=<k>    send k body bytes, then reset the connection (RST)
        close_idle_ms=D    keep-alive answer, then close the connection (FIN) after D ms
                           without a further request (a server dropping idle connections)
        stall=1            send the headers, then hang until the client goes away
        nocl=1             no Content-Length: chunked transfer encoding
        aggr=<name>        concurrency accounting, see /_stats (works on every path)
        busy_over=<k>      with aggr: answer 503 (no Retry-After) when more than k
                           requests of that aggr are in progress, this one included
                           (an origin that struggles); counted as "rejected" in /_stats
      Resumable bodies (/data only):
        ranges=1           Accept-Ranges: bytes and ETag: "<etag>" (default "v1", see
                           /_etag; the body depends on it: byte i = ((i + s) * 31) % 251
                           where s is the sum of the etag's bytes, 0 for "v1"); honours
                           Range: bytes=<n>- (206 with Content-Range, 416 past the end)
                           unless If-Range differs from the current validator
        validator=lm       Last-Modified (one per etag) instead of the ETag
        ignore_range=1     advertise ranges but always answer 200 with the whole body
        cut_once=<k>       the first request for this target whose body covers byte k
                           is reset (RST) after byte k; later ones are not
        sndbuf=<b>         SO_SNDBUF of the connection (rate measurements at the origin)
  GET /status/<code>[?retry_after=<v>]
                           that status with a short text body (none for 1xx/204/304)
                           and Retry-After: <v> when given.
  GET /redirect/<k>        302 to /redirect/<k-1>; /redirect/0 redirects to /data/10.
  GET /loop                302 to itself.
  GET /echo                the request headers as a JSON object {"Name": "value"}.
  GET /headers-endless     a status line, then one header line every interval_ms
                           (default 100) forever, until the client goes away.

Control endpoints (never recorded in /_requests)
  POST /_script  {"path": "/file/x.png", "responses": [{"status": 500},
                  {"status": 503, "headers": {"Retry-After": "1"}, "body": "..."}]}
                 The next requests to that path (query ignored) get these answers
                 in order (empty body unless "body"), then normal service resumes.
  GET  /_stats   {"<aggr>": {"current": n, "max": n, "count": n, "rejected": n}, ...}: requests with
                 aggr=<aggr> in progress now, at most at once, in total. A request is in
                 progress from the arrival of its head until it is answered or the client
                 closes the connection (FIN or RST), whichever comes first: a download the
                 client aborted is not counted while the handler is still writing.
  POST /_etag    {"path": "/data/N", "etag": "v2"}: the ETag (and body) of that path
                 from now on.
  GET  /_served  {"<aggr or path>": {"bytes": n, "samples": [[t, bytes], ...]}}: body
                 bytes written (t: seconds, monotonic, after each write).
  POST /_reset   clears stats, scripts, recorded requests, callbacks, sink state,
                 etags, cuts and served bytes.
  GET  /_requests JSON list of {"method", "path", "query", "headers", "target",
                 "conn", "t"} of the last 10,000 requests (t: arrival time of the
                 head, Unix ms with a fraction; headers: object, names as
                 sent, repeated names joined with ", "; target: the request-target
                 as sent, absolute when it came through a proxy; conn: sequence
                 number of the TCP connection, equal numbers = a reused
                 connection); recorded when the request head has arrived.

Callback sink
  POST /callback/<anything>  records {"path", "query", "headers", "body" (text),
                 "status" (the status answered)} and answers 200 (or as /_sink says).
                 Every attempt is recorded, failed ones too: filter on "status".
  GET  /_callbacks           the JSON list of recorded callbacks.
  POST /_sink {"fail": N, "status": 500, "retry_after": "1"}: the next N callbacks
                 answer that status (default 500) with Retry-After if given;
             {"down": true}: answer 503 to every callback until {"down": false};
             {"delay_ms": D}: wait D ms before answering callbacks (0 to stop).
"""
import argparse
import asyncio
import collections
import gzip
import http
import json
import mimetypes
import os
import signal
import socket
import struct
import time
import traceback
import urllib.parse

DATA_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "data")
PERIOD = 251
PATTERN = bytes((i * 31) % PERIOD for i in range(PERIOD))
BIG = PATTERN * (65536 // PERIOD + 2)
SLICE = 65536
MAX_HEAD = 1 << 20


def content(start, n):
    """Bytes [start, start+n) of the deterministic stream (n <= SLICE)."""
    off = start % PERIOD
    return BIG[off:off + n]


def reason(code):
    try:
        return http.HTTPStatus(code).phrase
    except ValueError:
        return "Status"


class Request:
    def __init__(self, method, target, version, headers, body):
        self.method = method
        self.target = target
        self.version = version
        parts = urllib.parse.urlsplit(target)
        self.path = urllib.parse.unquote(parts.path)
        self.query = parts.query
        self.args = {k: v[-1] for k, v in urllib.parse.parse_qs(parts.query).items()}
        self.headers = headers  # list of (name, value)
        self.body = body

    def header(self, name, default=""):
        name = name.lower()
        vals = [v for k, v in self.headers if k.lower() == name]
        return ", ".join(vals) if vals else default

    def header_dict(self):
        out = {}
        for k, v in self.headers:
            out[k] = out[k] + ", " + v if k in out else v
        return out

    def keep_alive(self):
        conn = self.header("Connection").lower()
        if self.version == "HTTP/1.0":
            return "keep-alive" in conn
        return "close" not in conn


class State:
    def __init__(self):
        self.conns = 0  # never reset: ids of live connections stay unique
        self.reset()

    def reset(self):
        self.stats = {}
        self.scripts = {}
        self.requests = collections.deque(maxlen=10000)
        self.callbacks = []
        self.sink = {"fail": 0, "status": 500, "retry_after": None, "down": False,
                     "delay_ms": 0}
        self.etags = {}
        self.cut_done = set()
        self.served = {}

    def count_served(self, key, n):
        s = self.served.setdefault(key, {"bytes": 0, "samples": []})
        s["bytes"] += n
        s["samples"].append([asyncio.get_running_loop().time(), s["bytes"]])

    def enter(self, aggr):
        s = self.stats.setdefault(aggr, {"current": 0, "max": 0, "count": 0, "rejected": 0})
        s["current"] += 1
        s["count"] += 1
        s["max"] = max(s["max"], s["current"])

    def leave(self, aggr):
        if aggr in self.stats:  # not when /_reset came in between
            self.stats[aggr]["current"] -= 1


class Close(Exception):
    """The connection must be closed after this response."""


class Conn:
    def __init__(self, state, reader, writer):
        self.state = state
        self.reader = reader
        self.writer = writer
        state.conns += 1
        self.conn_id = state.conns
        self.counting = None  # aggr= of the request being served and counted in /_stats
        # The client going away ends the request for /_stats at once (the handler may go
        # on writing into the closed connection for a while): hook the reader's EOF/error.
        feed_eof, set_exception = reader.feed_eof, reader.set_exception

        def on_eof():
            feed_eof()
            self.stop_counting()

        def on_error(exc):
            set_exception(exc)
            self.stop_counting()

        reader.feed_eof, reader.set_exception = on_eof, on_error

    def stop_counting(self):
        if self.counting is not None:
            aggr, self.counting = self.counting, None
            self.state.leave(aggr)

    # ---- wire -------------------------------------------------------------------

    async def read_request(self, prefix=b""):
        try:
            head = prefix + await self.reader.readuntil(b"\r\n\r\n")
        except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, ConnectionError):
            return None
        lines = head.decode("latin-1").split("\r\n")
        try:
            method, target, version = lines[0].split(" ", 2)
        except ValueError:
            return None
        headers = []
        for line in lines[1:]:
            if ":" in line:
                k, v = line.split(":", 1)
                headers.append((k.strip(), v.strip()))
        req = Request(method, target, version, headers, b"")
        if "100-continue" in req.header("Expect").lower():
            self.writer.write(b"HTTP/1.1 100 Continue\r\n\r\n")
        req.body = await self.read_body(req)
        return req

    async def read_body(self, req):
        if "chunked" in req.header("Transfer-Encoding").lower():
            body = bytearray()
            while True:
                size = int((await self.reader.readuntil(b"\r\n")).split(b";")[0], 16)
                if size == 0:
                    while (await self.reader.readuntil(b"\r\n")) != b"\r\n":
                        pass
                    return bytes(body)
                body += await self.reader.readexactly(size)
                await self.reader.readexactly(2)
        n = int(req.header("Content-Length", "0") or 0)
        return await self.reader.readexactly(n) if n else b""

    def head(self, status, headers):
        out = ["HTTP/1.1 %d %s" % (status, reason(status))]
        out += ["%s: %s" % (k, v) for k, v in headers]
        self.writer.write(("\r\n".join(out) + "\r\n\r\n").encode("latin-1"))

    async def send(self, req, status, headers=(), body=b"", ctype="text/plain"):
        headers = list(headers)
        names = {k.lower() for k, _ in headers}
        no_body = status < 200 or status in (204, 304)
        if "content-type" not in names and not no_body:
            headers.append(("Content-Type", ctype))
        if not no_body:
            headers.append(("Content-Length", str(len(body))))
        if not req.keep_alive():
            headers.append(("Connection", "close"))
        self.head(status, headers)
        if not no_body and req.method != "HEAD":
            self.writer.write(body)
        await self.writer.drain()
        if not req.keep_alive():
            raise Close()

    async def send_json(self, req, obj, status=200):
        await self.send(req, status, body=json.dumps(obj).encode(), ctype="application/json")

    async def wait_gone(self):
        """Blocks until the client closes its side."""
        while await self.reader.read(65536):
            pass

    # ---- bodies ---------------------------------------------------------------------

    async def send_body(self, req, size, chunk_at, ctype, resumable=False):
        """Streams a body of `size` bytes; chunk_at(pos, n) returns bytes [pos, pos+n)."""
        a = req.args
        if "delay_ms" in a:
            await asyncio.sleep(int(a["delay_ms"]) / 1000)
        ctype = a.get("type", ctype)
        headers = [("Content-Type", ctype)]
        if a.get("gzip") == "1" and "gzip" in req.header("Accept-Encoding").lower():
            data = gzip.compress(chunk_at(0, size))
            size, chunk_at = len(data), (lambda pos, n: data[pos:pos + n])
            headers.append(("Content-Encoding", "gzip"))
        status, start = 200, 0
        if resumable:
            status, start = self.range_of(req, size, headers)
            if status == 416:
                return await self.send(req, 416, headers, b"range not satisfiable\n")
            at = chunk_at
            chunk_at = lambda pos, n: at(start + pos, n)
        if "sndbuf" in a:
            sock = self.writer.get_extra_info("socket")
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, int(a["sndbuf"]))
        limit = int(a.get("reset_after", size))
        cut = int(a.get("cut_once", -1))
        if 0 <= cut - start < size - start and req.target not in self.state.cut_done:
            self.state.cut_done.add(req.target)
            limit = cut - start
        size -= start
        chunked = a.get("nocl") == "1"
        if chunked:
            headers.append(("Transfer-Encoding", "chunked"))
        else:
            headers.append(("Content-Length", a.get("lie", str(size))))
        closing = "lie" in a or limit < size or not req.keep_alive()
        if closing:
            headers.append(("Connection", "close"))
        self.head(status, headers)
        await self.writer.drain()
        if a.get("stall") == "1":
            await self.wait_gone()
            raise Close()
        if req.method == "HEAD":
            return
        await self.stream(chunk_at, min(size, limit), chunked, a, a.get("aggr", req.path))
        if limit < size:
            await asyncio.sleep(0.05)  # let the kernel send the bytes before the RST
            sock = self.writer.get_extra_info("socket")
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            self.writer.transport.abort()
            raise Close()
        if chunked:
            self.writer.write(b"0\r\n\r\n")
        await self.writer.drain()
        if closing:
            raise Close()
        if "close_idle_ms" in a:
            await asyncio.sleep(int(a["close_idle_ms"]) / 1000)
            raise Close()

    def range_of(self, req, size, headers):
        """Validators of a resumable body and the (status, first byte) to answer."""
        etag = self.state.etags.get(req.path, "v1")
        if req.args.get("validator") == "lm":
            shift = sum(etag.encode()) if etag != "v1" else 0
            validator = "Sat, %02d Jan 2000 00:00:00 GMT" % (1 + shift % 28)
            headers.append(("Last-Modified", validator))
        else:
            validator = '"%s"' % etag
            headers.append(("ETag", validator))
        headers.append(("Accept-Ranges", "bytes"))
        rng = req.header("Range")
        if_range = req.header("If-Range")
        if not rng.startswith("bytes=") or req.args.get("ignore_range") == "1":
            return 200, 0
        if if_range and if_range != validator:
            return 200, 0
        first = int(rng[6:].split("-")[0])
        if first >= size:
            headers.append(("Content-Range", "bytes */%d" % size))
            return 416, 0
        headers.append(("Content-Range", "bytes %d-%d/%d" % (first, size - 1, size)))
        return 206, first

    async def stream(self, chunk_at, size, chunked, a, key):
        step = max(1, int(a.get("chunk", SLICE)))
        delay = int(a.get("chunk_delay_ms", 0)) / 1000
        pos = 0
        while pos < size:
            data = chunk_at(pos, min(step, size - pos))
            self.writer.write(b"%x\r\n%s\r\n" % (len(data), data) if chunked else data)
            pos += len(data)
            await self.writer.drain()
            self.state.count_served(key, len(data))
            if delay and pos < size:
                await asyncio.sleep(delay)

    # ---- origin endpoints -----------------------------------------------------------

    async def data(self, req, n):
        resumable = req.args.get("ranges") == "1"
        etag = self.state.etags.get(req.path, "v1")
        shift = sum(etag.encode()) if resumable and etag != "v1" else 0

        def chunk_at(pos, k):
            pos += shift
            if k <= SLICE:
                return content(pos, k)
            return b"".join(content(p, min(SLICE, pos + k - p)) for p in range(pos, pos + k, SLICE))
        await self.send_body(req, n, chunk_at, "application/octet-stream", resumable)

    async def file(self, req, name):
        path = os.path.join(DATA_DIR, name)
        if "/" in name or name.startswith(".") or not os.path.isfile(path):
            return await self.send(req, 404, body=b"404 page not found\n")
        with open(path, "rb") as f:
            blob = f.read()
        ctype = mimetypes.guess_type(name)[0] or "application/octet-stream"
        await self.send_body(req, len(blob), lambda pos, k: blob[pos:pos + k], ctype)

    async def status(self, req, code):
        headers = []
        if "retry_after" in req.args:
            headers.append(("Retry-After", req.args["retry_after"]))
        await self.send(req, code, headers, ("%d %s\n" % (code, reason(code))).encode())

    async def endless(self, req):
        interval = int(req.args.get("interval_ms", 100)) / 1000
        self.writer.write(b"HTTP/1.1 200 OK\r\n")
        i = 0
        while not self.reader.at_eof() and not self.writer.is_closing():
            self.writer.write(b"X-Endless-%d: %d\r\n" % (i, i))
            await self.writer.drain()
            i += 1
            await asyncio.sleep(interval)
        raise Close()

    async def scripted(self, req, answer):
        headers = list((answer.get("headers") or {}).items())
        body = answer.get("body", "")
        body = body.encode() if isinstance(body, str) else bytes(body)
        await self.send(req, int(answer.get("status", 200)), headers, body)

    # ---- sink -----------------------------------------------------------------------

    async def callback(self, req):
        sink = self.state.sink
        if sink["delay_ms"]:
            await asyncio.sleep(sink["delay_ms"] / 1000)
        status, headers = 200, []
        if sink["down"]:
            status = 503
        elif sink["fail"] > 0:
            sink["fail"] -= 1
            status = sink["status"]
            if sink["retry_after"] is not None:
                headers.append(("Retry-After", str(sink["retry_after"])))
        self.state.callbacks.append({"path": req.path, "query": req.query,
                                     "headers": req.header_dict(),
                                     "body": req.body.decode("utf-8", "replace"),
                                     "status": status})
        await self.send(req, status, headers, b"ok\n" if status == 200 else b"failed\n")

    async def set_sink(self, req, cfg):
        sink = self.state.sink
        if "fail" in cfg:
            sink["fail"] = int(cfg["fail"])
            sink["status"] = int(cfg.get("status", 500))
            sink["retry_after"] = cfg.get("retry_after")
        if "down" in cfg:
            sink["down"] = bool(cfg["down"])
        if "delay_ms" in cfg:
            sink["delay_ms"] = int(cfg["delay_ms"])
        await self.send_json(req, sink)

    # ---- routing --------------------------------------------------------------------

    async def control(self, req):
        st, p, m = self.state, req.path, req.method
        try:
            body = json.loads(req.body or b"{}") if m == "POST" else None
        except ValueError:
            return await self.send(req, 400, body=b"bad json\n")
        if p == "/_script" and m == "POST":
            st.scripts[body["path"]] = collections.deque(body.get("responses", []))
            return await self.send_json(req, {"ok": True})
        if p == "/_stats":
            return await self.send_json(req, st.stats)
        if p == "/_etag" and m == "POST":
            st.etags[body["path"]] = body["etag"]
            return await self.send_json(req, {"ok": True})
        if p == "/_served":
            return await self.send_json(req, st.served)
        if p == "/_reset" and m == "POST":
            st.reset()
            return await self.send_json(req, {"ok": True})
        if p == "/_requests":
            return await self.send_json(req, list(st.requests))
        if p == "/_callbacks":
            return await self.send_json(req, st.callbacks)
        if p == "/_sink" and m == "POST":
            return await self.set_sink(req, body)
        await self.send(req, 404, body=b"404 page not found\n")

    async def route(self, req):
        p = req.path
        script = self.state.scripts.get(p)
        if script:
            return await self.scripted(req, script.popleft())
        parts = p.strip("/").split("/")
        if parts[0] == "data" and len(parts) == 2 and parts[1].isdigit():
            return await self.data(req, int(parts[1]))
        if parts[0] == "file" and len(parts) == 2:
            return await self.file(req, parts[1])
        if parts[0] == "status" and len(parts) == 2 and parts[1].isdigit():
            return await self.status(req, int(parts[1]))
        if parts[0] == "redirect" and len(parts) == 2 and parts[1].isdigit():
            k = int(parts[1])
            loc = "/redirect/%d" % (k - 1) if k > 0 else "/data/10"
            return await self.send(req, 302, [("Location", loc)], b"redirect\n")
        if p == "/loop":
            return await self.send(req, 302, [("Location", "/loop")], b"redirect\n")
        if p == "/echo":
            return await self.send_json(req, req.header_dict())
        if p == "/headers-endless":
            return await self.endless(req)
        if parts[0] == "callback" and req.method == "POST":
            return await self.callback(req)
        await self.send(req, 404, body=b"404 page not found\n")

    async def serve_one(self, req):
        if req.path.startswith("/_"):
            return await self.control(req)
        self.state.requests.append({"method": req.method, "path": req.path,
                                    "query": req.query, "headers": req.header_dict(),
                                    "target": req.target, "conn": self.conn_id,
                                    "t": time.time() * 1000})
        aggr = req.args.get("aggr")
        if aggr is None:
            return await self.route(req)
        self.state.enter(aggr)
        self.counting = aggr
        try:
            stats = self.state.stats[aggr]
            if "busy_over" in req.args and stats["current"] > int(req.args["busy_over"]):
                stats["rejected"] += 1
                return await self.send(req, 503, body=b"busy\n")
            await self.route(req)
        finally:
            self.stop_counting()

    async def run(self):
        try:
            first = await self.reader.read(1)
            if first == b"\x16":  # a TLS ClientHello: answer in plain HTTP, like Go does
                self.writer.write(b"HTTP/1.0 400 Bad Request\r\n\r\n"
                                  b"Client sent an HTTPS request to an HTTP server.\n")
                raise Close()
            prefix = first
            while first:
                req = await self.read_request(prefix)
                prefix = b""
                if req is None:
                    break
                await self.serve_one(req)
        except (Close, ConnectionError, asyncio.IncompleteReadError):
            pass
        except Exception:  # a bug here must not take the server down
            traceback.print_exc()
        finally:
            if not self.writer.is_closing():
                self.writer.close()


async def main():
    ap = argparse.ArgumentParser(description="test origin + callback sink")
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--host", default="127.0.0.1")
    args = ap.parse_args()
    state = State()

    async def handle(reader, writer):
        try:
            await Conn(state, reader, writer).run()
        except asyncio.CancelledError:  # shutting down
            pass

    server = await asyncio.start_server(handle, args.host, args.port, backlog=8192,
                                        limit=MAX_HEAD, reuse_address=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    async with server:
        await stop.wait()


if __name__ == "__main__":
    asyncio.run(main())
