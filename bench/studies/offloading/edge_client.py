"""The offloading client (the study's mobile device): uploads a model's pieces to the edge server and,
from time 0, runs queries that use the server's built prefix remotely and the rest locally (issue 14).

    python -m bench.studies.offloading.edge_client --server HOST:PORT --pieces FILE [--input FILE.npy]

reads commands on stdin, one per line, and answers each with one JSON line:
``run MODE SESSION [AFTER]`` uploads every piece with build mode MODE under
session id SESSION while the query loop runs, then AFTER (10) more queries;
``quit`` ends. It prints ``ready`` once its own copy of the model is built.
The study runs it inside the link's client namespace under a CPU quota (a cgroup).

Queries: while the server has built nothing, a query runs all pieces
locally; once it has built a prefix, the query's input crosses the link, the
server runs its prefix (as built when the query arrives), and the
intermediate tensor comes back over the same link for the client to finish.
A dropped upload connection is reported and the upload resumes from the last
piece the server holds complete; a refused piece ends the upload with
:class:`PieceRefused`.
"""
from __future__ import annotations

import argparse
import json
import socket
import sys
import threading
import time
from dataclasses import dataclass, field

import numpy as np

from bench.studies.offloading import pieces as wire
from bench.studies.offloading import protocol as proto

QUERIES_AFTER = 10  # the study's queries after the upload completes
RECONNECTS = 5


class PieceRefused(RuntimeError):
    """The server refused a piece (its message says which and why)."""


@dataclass
class Query:
    start_s: float  # from the upload's start
    duration_s: float
    server_pieces: int  # the prefix the server ran (0: all local)
    remote_s: float  # send, server, receive
    server_s: float
    local_s: float
    after_upload: bool


@dataclass
class Upload:
    mode: str
    session: str
    upload_s: float | None = None  # start to every piece built on the server
    sent_bytes: int = 0  # message bytes of the pieces (payload and header), resent ones included
    piece_bytes: int = 0  # the pieces' own bytes, each once
    server: dict = field(default_factory=dict)  # the server's state at completion
    drops: list[str] = field(default_factory=list)
    queries: list[Query] = field(default_factory=list)
    # On time.perf_counter (CLOCK_MONOTONIC, the server's clock too): the upload's start, and from it when
    # the first piece's bytes went to the kernel and when the last piece's had (what the link had yet to carry).
    clock_start: float | None = None
    first_send_s: float | None = None
    sent_end_s: float | None = None

    def doc(self) -> dict:
        return {"mode": self.mode, "session": self.session, "upload_s": self.upload_s,
                "sent_bytes": self.sent_bytes, "piece_bytes": self.piece_bytes, "server": self.server,
                "drops": self.drops, "clock_start": self.clock_start, "first_send_s": self.first_send_s,
                "sent_end_s": self.sent_end_s, "queries": [q.__dict__ for q in self.queries]}


def _address(server: str) -> tuple[str, int]:
    host, _, port = server.rpartition(":")
    return host, int(port)


class Client:
    def __init__(self, server: str, blobs: list[bytes], local: list | None = None):
        """``blobs``: the encoded pieces in order; ``local``: builder units of the same pieces, one per piece
        (built here from the blobs when not given)."""
        self.address = _address(server)
        self.blobs = blobs
        heads = [wire.peek(b) for b in blobs]
        self.model, self.count = heads[0]["model"], len(blobs)
        if local is None:
            from bench.studies.offloading import builder

            local = [builder.build([wire.decode(b)]) for b in blobs]
        self.local = local
        self.server_built = 0
        self._query_sock: socket.socket | None = None

    # -------------------------------------------------------------- upload
    def _connect(self) -> socket.socket:
        sock = socket.create_connection(self.address, timeout=600)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return sock

    def upload(self, mode: str, session: str, drop_after_bytes: int | None = None,
               result: Upload | None = None, log=lambda msg: None) -> Upload:
        """Send every piece (resuming after a dropped connection) and wait until the server built all.

        ``drop_after_bytes`` (tests): close the connection once, abruptly, after that many piece bytes.
        """
        up = result or Upload(mode, session)
        up.piece_bytes = sum(map(len, self.blobs))
        start = up.clock_start = time.perf_counter()
        self.server_built = 0
        for attempt in range(RECONNECTS + 1):
            sock = self._connect()
            try:
                proto.send_json(sock, proto.HELLO, {"session": session, "model": self.model, "count": self.count,
                                                    "mode": mode})
                kind, payload = proto.recv(sock)
                reply = proto.parse_json(kind, payload)
                if kind == proto.ERROR:
                    raise PieceRefused(reply.get("error"))
                self.server_built = reply.get("built", 0)
                done = threading.Event()
                outcome: dict = {}
                reader = threading.Thread(target=self._read_progress, args=(sock, done, outcome), daemon=True)
                reader.start()
                for k in range(reply["resume_from"], self.count):
                    if "error" in outcome:
                        break
                    blob = self.blobs[k]
                    if (drop_after_bytes is not None
                            and up.sent_bytes + proto.HEADER.size + len(blob) > drop_after_bytes):
                        cut = max(0, drop_after_bytes - up.sent_bytes - proto.HEADER.size)
                        sock.sendall(proto.HEADER.pack(proto.PIECE, len(blob)) + blob[:cut])
                        up.sent_bytes += proto.HEADER.size + cut
                        drop_after_bytes = None
                        sock.shutdown(socket.SHUT_RDWR)  # the link goes down mid-piece
                        raise proto.Dropped(f"connection dropped during piece {k + 1}/{self.count}")
                    if up.first_send_s is None:
                        up.first_send_s = round(time.perf_counter() - start, 4)
                    up.sent_bytes += proto.send(sock, proto.PIECE, blob)
                up.sent_end_s = round(time.perf_counter() - start, 4)
                if "error" not in outcome:
                    proto.send(sock, proto.DONE)
                done.wait()
                if "error" in outcome:
                    raise outcome["error"]
                up.server = outcome["complete"]
                up.upload_s = time.perf_counter() - start
                self.server_built = self.count
                return up
            except (proto.Dropped, ConnectionError) as exc:
                if "done" in locals() and done.wait(5) and isinstance(outcome.get("error"), PieceRefused):
                    raise outcome["error"] from None  # refused, then closed: not a drop to resume from
                msg = (f"upload of {self.model} ({mode}) lost its connection: {exc}; the server holds "
                       f"{self.server_built} built pieces; reconnecting to resume from the last complete piece")
                up.drops.append(msg)
                log(msg)
                if attempt == RECONNECTS:
                    raise
                time.sleep(0.2)
            finally:
                sock.close()
        raise AssertionError("unreachable")

    def _read_progress(self, sock: socket.socket, done: threading.Event, outcome: dict) -> None:
        try:
            while True:
                kind, payload = proto.recv(sock)
                doc = proto.parse_json(kind, payload)
                if kind == proto.BUILT:
                    self.server_built = max(self.server_built, doc["built"])
                elif kind == proto.COMPLETE:
                    outcome["complete"] = doc
                    return
                elif kind == proto.ERROR:
                    outcome["error"] = PieceRefused(doc.get("error"))
                    return
        except (OSError, proto.ProtocolError) as exc:
            outcome["error"] = exc if isinstance(exc, OSError) else ConnectionError(str(exc))
        finally:
            done.set()

    # -------------------------------------------------------------- queries
    def query(self, x: np.ndarray) -> tuple[np.ndarray, int, float, float, float]:
        """(output, pieces the server ran, remote s, server s, local s) for one query."""
        k, remote_s, server_s = 0, 0.0, 0.0
        if self.server_built:
            start = time.perf_counter()
            if self._query_sock is None:
                self._query_sock = self._connect()
            proto.send(self._query_sock, proto.QUERY, proto.encode_tensor(x))
            kind, payload = proto.recv(self._query_sock)
            if kind == proto.ERROR:
                raise RuntimeError(proto.parse_json(kind, payload).get("error"))
            x, meta = proto.decode_tensor(payload)
            k, server_s, remote_s = meta["pieces"], meta["server_s"], time.perf_counter() - start
        start = time.perf_counter()
        from bench.studies.offloading import builder

        y = builder.run_chain(self.local[k:], np.asarray(x, np.float32))
        return y, k, remote_s, server_s, time.perf_counter() - start

    def close(self) -> None:
        if self._query_sock is not None:
            self._query_sock.close()
            self._query_sock = None

    # -------------------------------------------------------------- one experiment
    def run(self, mode: str, session: str, x: np.ndarray, after: int = QUERIES_AFTER, log=lambda msg: None,
            **upload_kw) -> Upload:
        """Upload while the query loop runs from time 0; after the upload completes, ``after`` more queries."""
        up = Upload(mode, session)
        failure: list[BaseException] = []
        origin = time.perf_counter()

        def uploading():
            try:
                self.upload(mode, session, result=up, log=log, **upload_kw)
            except BaseException as exc:  # reported by the query loop's thread
                failure.append(exc)

        uploader = threading.Thread(target=uploading, name="upload")
        uploader.start()
        left = after
        try:
            while left > 0 and not failure:
                done = not uploader.is_alive()
                t0 = time.perf_counter()
                _, k, remote_s, server_s, local_s = self.query(x)
                up.queries.append(Query(round(t0 - origin, 4), round(time.perf_counter() - t0, 4), k,
                                        round(remote_s, 4), round(server_s, 4), round(local_s, 4), done))
                if done:
                    left -= 1
        finally:
            uploader.join()
            self.close()
        if failure:
            raise failure[0]
        return up


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--server", required=True, help="HOST:PORT of the edge server")
    p.add_argument("--pieces", required=True, help="the model's pieces (bench.studies.offloading.pieces.write_bundle)")
    p.add_argument("--input", help="a .npy query input (one example, batch axis included); default: zeros")
    a = p.parse_args(argv)
    blobs = wire.read_bundle(a.pieces)
    client = Client(a.server, blobs)
    shape = wire.decode(blobs[0]).input_shape
    x = np.load(a.input) if a.input else np.zeros((1, *shape), np.float32)
    client.query(x)  # the local chain's first call outside the timed runs
    print("ready", flush=True)
    for line in sys.stdin:
        words = line.split()
        if not words:
            continue
        if words[0] == "quit":
            break
        if words[0] != "run" or len(words) not in (3, 4):
            print(json.dumps({"error": f"unknown command {line.strip()!r}: run MODE SESSION [AFTER] | quit"}),
                  flush=True)
            continue
        try:
            up = client.run(words[1], words[2], x, after=int(words[3]) if len(words) == 4 else QUERIES_AFTER,
                            log=lambda m: print(f"client: {m}", file=sys.stderr, flush=True))
            print(json.dumps(up.doc()), flush=True)
        except (OSError, PieceRefused, proto.ProtocolError, RuntimeError) as exc:
            print(json.dumps({"error": f"{type(exc).__name__}: {exc}"}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
