"""The edge server: receives a model's pieces in order over one connection, builds them, and answers
queries by running the prefix built so far (issue 14; protocol in :mod:`bench.studies.offloading.protocol`).

    python -m bench.studies.offloading.edge_server [--host 169.254.k.1] [--port 8050] [--mode baseline|proposed]

The address, the port and the mode default to the study's knobs, ``SB_OFFLOAD_HOST``, ``SB_OFFLOAD_PORT`` and
``SB_OFFLOAD_BUILD_MODE``. The study starts it as the registry's ``edge-server`` service (its declaration.py) in
the link's server namespace, on the link's address; it is healthy once its port accepts a connection.

Build modes (per upload, ``mode`` in its ``HELO``; the server's default otherwise):

- ``baseline`` (the original system): the upload thread builds each piece
  before it reads the next, so while a piece builds the link stands still
  once the socket buffers are full.
- ``proposed`` (the follow-up): the upload thread only receives and checks
  pieces; a build thread builds them, and when several have arrived while it
  was busy it builds them together as one unit (:func:`bench.studies.offloading.builder.build`).

How much of each build overlaps the transfer: at each build's start and end the server reads
its upload connection's ``TCP_INFO`` (bytes received by the kernel, read or not, and the time since the
last data arrived), so it knows how many of the upload's bytes arrived while it built (socket buffers and
the link's queue keep the transfer going while the upload thread builds, until they fill) and when the
transfer's last byte arrived.
Times are ``time.perf_counter`` (CLOCK_MONOTONIC: one clock for the client and the server on one machine);
``clock_origin`` in the state is the session's time 0 on it.

One upload session at a time: a ``HELO`` with a new session id replaces the
old one; the same id resumes it from its last complete piece (a piece is
complete when all its bytes arrived and its checksum matched). A connection
that drops mid-piece is reported (stderr and ``STAT``) and the partial piece
dropped. A corrupt piece is refused with an ``ERRR`` naming it and is never
built; the connection is then closed.
"""
from __future__ import annotations

import argparse
import importlib
import os
import queue
import socket
import struct
import sys
import threading
import time

from bench.studies.offloading import pieces as wire
from bench.studies.offloading import protocol as proto

MODES = ("baseline", "proposed")
# struct tcp_info (linux/tcp.h): tcpi_last_data_recv (ms, kernel-tick resolution) and tcpi_bytes_received.
_LAST_DATA_RECV = struct.Struct("=I"), 52
_BYTES_RECEIVED = struct.Struct("=Q"), 128


def arrivals(sock: socket.socket | None) -> tuple[int, float] | None:
    """(bytes the kernel received on ``sock``, seconds since its last data arrived), read and unread alike;
    None where TCP_INFO does not say (not Linux, or no connection)."""
    if sock is None:
        return None
    try:
        info = sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, 256)
    except (OSError, AttributeError):
        return None
    if len(info) < _BYTES_RECEIVED[1] + 8:
        return None
    return (_BYTES_RECEIVED[0].unpack_from(info, _BYTES_RECEIVED[1])[0],
            _LAST_DATA_RECV[0].unpack_from(info, _LAST_DATA_RECV[1])[0] / 1000)


def overlap_of(start: float, end: float, before: tuple | None, after: tuple | None) -> dict:
    """What arrived of the upload during a build from ``start`` to ``end`` (``before`` and ``after``:
    :func:`arrivals` then): its bytes, and how long bytes kept arriving (from the build's start to the last
    arrival before its end; a trickle through a nearly closed window counts, so the bytes are the measure
    of the transfer's progress, :mod:`bench.studies.offloading.timeline`)."""
    if before is None or after is None:
        return {}
    bytes_in = after[0] - before[0]
    arriving = min(max(end - after[1] - start, 0.0), end - start) if bytes_in > 0 else 0.0
    return {"bytes_in": bytes_in, "arriving_s": round(arriving, 4)}


def log(msg: str) -> None:
    print(f"edge: {msg}", file=sys.stderr, flush=True)


class Session:
    """One model's upload: the pieces received, the units built, what happened."""

    def __init__(self, session_id: str, model: str, count: int, mode: str):
        from bench.studies.offloading import builder

        self.builder = builder
        self.id, self.model, self.count, self.mode = session_id, model, count, mode
        self.received: list[wire.Piece] = []  # complete pieces, in order
        self.units: list = []  # builder.Unit, contiguous from piece 0
        self.events: list[dict] = []
        self.origin = time.perf_counter()
        self.changed = threading.Condition()
        self.closed = False
        self.notify = None  # sends BULT on the current upload connection
        self.upload_sock: socket.socket | None = None  # the current upload connection, for its TCP_INFO
        # One upload connection at a time: a resumed one waits until the dropped one's thread has seen the drop
        # (in baseline mode it may still be building the piece before it).
        self.uploading = threading.Lock()
        self._waiting: queue.Queue = queue.Queue()
        if mode == "proposed":
            threading.Thread(target=self._build_loop, name=f"build-{session_id}", daemon=True).start()

    @property
    def built(self) -> int:
        return self.units[-1].last + 1 if self.units else 0

    def event(self, kind: str, **info) -> None:
        self.events.append({"t_s": round(time.perf_counter() - self.origin, 4), "event": kind, **info})

    def accept(self, piece: wire.Piece) -> None:
        """A complete, checked piece: build it now (baseline) or hand it to the build thread (proposed)."""
        self.received.append(piece)
        self.event("received", piece=piece.index)
        if self.mode == "baseline":
            self._build([piece])
        else:
            self._waiting.put(piece)

    def _build_loop(self) -> None:
        while not self.closed:
            try:
                batch = [self._waiting.get(timeout=0.5)]
            except queue.Empty:
                continue
            while True:  # everything that arrived while the last unit was building: built together
                try:
                    batch.append(self._waiting.get_nowait())
                except queue.Empty:
                    break
            if not self.closed:
                self._build(batch)

    def _build(self, batch: list[wire.Piece]) -> None:
        sock = self.upload_sock
        before, start = arrivals(sock), time.perf_counter()
        unit = self.builder.build(batch)
        end = time.perf_counter()
        overlap = overlap_of(start, end, before, arrivals(sock) if sock is self.upload_sock else None)
        with self.changed:
            self.units.append(unit)
            self.event("built", first=unit.first, last=unit.last, start_s=round(start - self.origin, 4),
                       end_s=round(end - self.origin, 4), build_s=round(unit.build_s, 4), **overlap)
            self.changed.notify_all()
        if self.notify is not None:
            try:
                self.notify(self.progress())
            except OSError:
                pass  # the upload connection is gone; a resumed one learns the state from REDY

    def progress(self) -> dict:
        return {"built": self.built, "received": len(self.received), "count": self.count,
                "units": len(self.units), "build_s_total": round(sum(u.build_s for u in self.units), 4)}

    def state(self) -> dict:
        return {"session": self.id, "model": self.model, "mode": self.mode, **self.progress(),
                "units_pieces": [u.pieces for u in self.units], "clock_origin": self.origin, "events": self.events}

    def wait_built(self, timeout: float = 600.0) -> bool:
        with self.changed:
            return self.changed.wait_for(lambda: self.built == self.count or self.closed, timeout)

    def close(self) -> None:
        self.closed = True
        with self.changed:
            self.changed.notify_all()


class EdgeServer:
    def __init__(self, host: str, port: int, mode: str = "proposed"):
        if mode not in MODES:
            raise ValueError(f"build mode is one of {', '.join(MODES)}, not {mode!r}")
        self.mode = mode
        self.session: Session | None = None
        self._lock = threading.Lock()
        self.sock = socket.create_server((host, port))
        self.address = self.sock.getsockname()[:2]
        self._stopping = False

    # -------------------------------------------------------------- connections
    def serve_forever(self) -> None:
        while not self._stopping:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                break
            conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            threading.Thread(target=self._connection, args=(conn,), daemon=True).start()

    def start(self) -> "EdgeServer":
        threading.Thread(target=self.serve_forever, name="edge-accept", daemon=True).start()
        return self

    def stop(self) -> None:
        self._stopping = True
        try:
            self.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self.sock.close()
        if self.session:
            self.session.close()

    def _connection(self, conn: socket.socket) -> None:
        with conn:
            try:
                while True:
                    kind, payload = proto.recv(conn)
                    if kind == proto.HELLO:
                        self._upload(conn, proto.parse_json(kind, payload))
                        return
                    if kind == proto.QUERY:
                        self._query(conn, payload)
                    elif kind == proto.STATUS:
                        proto.send_json(conn, proto.STATUS, self.session.state() if self.session else {})
                    else:
                        raise proto.ProtocolError(f"unexpected {kind.decode()} outside an upload")
            except proto.Dropped:
                return
            except proto.ProtocolError as exc:
                self._refuse(conn, str(exc))
            except OSError:
                return

    def _refuse(self, conn: socket.socket, message: str, **extra) -> None:
        log(message)
        try:
            proto.send_json(conn, proto.ERROR, {"error": message, **extra})
        except OSError:
            pass

    # -------------------------------------------------------------- upload
    def _session_for(self, hello: dict) -> Session:
        try:
            sid, model, count = str(hello["session"]), str(hello["model"]), int(hello["count"])
        except (KeyError, TypeError, ValueError):
            raise proto.ProtocolError("HELO needs session, model and count") from None
        mode = hello.get("mode") or self.mode
        if mode not in MODES:
            raise proto.ProtocolError(f"build mode is one of {', '.join(MODES)}, not {mode!r}")
        if count < 1:
            raise proto.ProtocolError(f"a model has at least one piece, not {count}")
        with self._lock:
            s = self.session
            if s is not None and s.id == sid and (s.model, s.count, s.mode) == (model, count, mode):
                return s
            if s is not None:
                s.close()
            self.session = Session(sid, model, count, mode)
            return self.session

    def _upload(self, conn: socket.socket, hello: dict) -> None:
        session = self._session_for(hello)
        if not session.uploading.acquire(timeout=600):
            raise proto.ProtocolError(f"session {session.id} is still uploading on another connection")
        try:
            if session.received or session.events:
                session.event("resumed", from_piece=len(session.received))
                log(f"session {session.id}: resuming {session.model} from piece {len(session.received) + 1} "
                    f"of {session.count}")
            self._receive(conn, session)
        finally:
            session.uploading.release()

    def _receive(self, conn: socket.socket, session: Session) -> None:
        send_lock = threading.Lock()

        def notify(progress: dict) -> None:
            with send_lock:
                proto.send_json(conn, proto.BUILT, progress)

        session.notify = notify
        session.upload_sock = conn
        with send_lock:
            proto.send_json(conn, proto.READY, {"resume_from": len(session.received), **session.progress(),
                                                "mode": session.mode})
            session.event("ready", resume_from=len(session.received))
        try:
            while True:
                try:
                    kind, payload = proto.recv(conn)
                except proto.Dropped as exc:
                    where = len(session.received)
                    partial = (f" {exc.got} of {exc.expected} bytes of piece {where + 1} had arrived and are "
                               f"dropped;" if exc.kind == proto.PIECE else "")
                    msg = (f"upload of {session.model} (session {session.id}) dropped after {where} of "
                           f"{session.count} complete pieces:{partial} it resumes from piece {where + 1}")
                    session.event("dropped", complete=where, partial_bytes=exc.got if exc.kind == proto.PIECE else 0)
                    log(msg)
                    return
                if kind == proto.PIECE:
                    try:
                        piece = wire.decode(payload)
                    except wire.PieceError as exc:
                        session.event("rejected", piece=len(session.received), error=str(exc))
                        with send_lock:
                            self._refuse(conn, str(exc), piece=len(session.received))
                        return
                    expected = len(session.received)
                    if (piece.model, piece.count, piece.index) != (session.model, session.count, expected):
                        msg = (f"{piece.label} arrived where piece {expected + 1}/{session.count} of "
                               f"{session.model} was expected; rejected, not built")
                        session.event("rejected", piece=expected, error=msg)
                        with send_lock:
                            self._refuse(conn, msg, piece=expected)
                        return
                    session.accept(piece)
                elif kind == proto.DONE:
                    if len(session.received) != session.count:
                        raise proto.ProtocolError(f"DONE after {len(session.received)} of {session.count} pieces")
                    seen = arrivals(conn)  # DONE follows the last piece: its arrival ends the transfer
                    if seen is not None:
                        session.event("transfer_end", at_s=round(time.perf_counter() - session.origin - seen[1], 4))
                    session.wait_built()
                    with send_lock:
                        proto.send_json(conn, proto.COMPLETE, session.state())
                    return
                else:
                    raise proto.ProtocolError(f"unexpected {kind.decode()} during an upload")
        finally:
            if session.notify is notify:
                session.notify = None
            if session.upload_sock is conn:
                session.upload_sock = None

    # -------------------------------------------------------------- queries
    def _query(self, conn: socket.socket, payload: bytes) -> None:
        from bench.studies.offloading import builder

        x, _ = proto.decode_tensor(payload)
        session = self.session
        units = list(session.units) if session else []  # the prefix built now
        start = time.perf_counter()
        y = builder.run_chain(units, x.astype("float32")) if units else x
        proto.send(conn, proto.RESULT, proto.encode_tensor(
            y, pieces=units[-1].last + 1 if units else 0, server_s=round(time.perf_counter() - start, 6)))


def main(argv=None) -> int:
    from servebench.settings import from_environment

    knobs = from_environment().section("offload")
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--host", default=knobs.host,
                   help="the address to bind: loopback or the link's server address (default: SB_OFFLOAD_HOST, "
                        "%(default)s)")
    p.add_argument("--port", type=int, default=knobs.port, help="default: SB_OFFLOAD_PORT (%(default)s)")
    p.add_argument("--mode", choices=MODES, default=knobs.build_mode,
                   help="build mode when an upload names none (default: SB_OFFLOAD_BUILD_MODE, %(default)s)")
    a = p.parse_args(argv)
    importlib.import_module("tensorflow")  # before "listening": the first piece does not pay for the import

    server = EdgeServer(a.host, a.port, a.mode)
    print(f"listening on {a.host}:{server.address[1]} pid {os.getpid()}", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
