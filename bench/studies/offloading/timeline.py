"""One upload's timeline on one clock: the transfer and the server's builds, and how much of the building
the transfer overlapped (issue 20, audit item 8).

The client and the edge server run on one machine, so ``time.perf_counter`` (CLOCK_MONOTONIC) is one clock
for both: the client reports its upload's start on it (``clock_start``), the server its session's time 0
(``clock_origin``), and every time here is in seconds from the client's upload start.

- transfer: from the client handing the first piece's bytes to its kernel to the last byte's arrival at
  the server (the ``transfer_end`` event: when ``DONE``, sent right after the last piece, arrived);
- builds: each ``built`` event's start and end on the server;
- overlap: of each build, the link time of the upload's bytes that arrived while it ran (bytes x 8 / the
  link's rate measured before the upload; :func:`bench.studies.offloading.edge_server.overlap_of` counts
  them), at most the part of the build within the transfer: the link carried the upload while the server
  built. Bytes, not "until the last arrival": a window that the kernel reopens a little at a time lets a
  trickle through long after the link stopped carrying the upload at its rate;
- stall: the rest of a build before the transfer's end: the transfer stood still while the server built
  (the baseline's cost, which the proposed build thread removes);
- tail: building outside the transfer (after the last byte arrived), which neither mode can hide.

So per upload ``0 <= overlap_s <= min(build_s, transfer_s)`` and ``overlap_s + stall_s + tail_s = build_s``.
"""
from __future__ import annotations

COLUMNS = ["transfer_start_s", "sent_end_s", "transfer_end_s", "build_start_s", "build_end_s", "build_s",
           "overlap_s", "overlap_frac", "stall_s", "tail_s", "build_bytes_in"]


def of_upload(doc: dict, rate_mbit: float) -> dict:
    """The timeline's columns for one upload: the client's answer to ``run`` (its ``server`` the server's
    state at completion) on a link of ``rate_mbit``; None in each where the client or the server did not
    report its part."""
    server = doc.get("server") or {}
    builds = [e for e in server.get("events", []) if e.get("event") == "built" and "end_s" in e]
    ends = [e["at_s"] for e in server.get("events", []) if e.get("event") == "transfer_end"]
    if doc.get("clock_start") is None or server.get("clock_origin") is None or not builds or not ends:
        return dict.fromkeys(COLUMNS)
    shift = server["clock_origin"] - doc["clock_start"]  # server time -> the client's upload time
    t_start = doc.get("first_send_s") or 0.0
    t_end = max(ends[-1] + shift, t_start)
    build_s = overlap = stall = 0.0
    bytes_in = 0
    for e in builds:
        start, end = e["start_s"] + shift, e["end_s"] + shift
        build_s += end - start
        during = max(0.0, min(end, t_end) - max(start, t_start))  # the build's part within the transfer
        hidden = min(during, e.get("bytes_in", 0) * 8 / (rate_mbit * 1e6))
        overlap += hidden
        stall += during - hidden
        bytes_in += e.get("bytes_in", 0)
    first, last = builds[0]["start_s"] + shift, builds[-1]["end_s"] + shift
    return {"transfer_start_s": round(t_start, 4), "sent_end_s": doc.get("sent_end_s"),
            "transfer_end_s": round(t_end, 4), "build_start_s": round(first, 4), "build_end_s": round(last, 4),
            "build_s": round(build_s, 4), "overlap_s": round(overlap, 4),
            "overlap_frac": round(overlap / build_s, 4) if build_s > 0 else None, "stall_s": round(stall, 4),
            "tail_s": round(build_s - overlap - stall, 4), "build_bytes_in": bytes_in}


def consistent(row: dict, slack_s: float = 1e-3) -> list[str]:
    """What is wrong with one upload's timeline columns (empty when nothing): the overlap within the build
    and the transfer, the parts within the build, the spans in order."""
    wrong = []
    if row.get("overlap_s") is None:
        return ["no overlap recorded"]
    transfer = row["transfer_end_s"] - row["transfer_start_s"]
    if not -slack_s <= row["overlap_s"] <= min(row["build_s"], transfer) + slack_s:
        wrong.append(f"overlap {row['overlap_s']} s outside [0, min(build {row['build_s']} s, "
                     f"transfer {transfer:.4f} s)]")
    parts = row["overlap_s"] + row["stall_s"] + row["tail_s"]
    if abs(parts - row["build_s"]) > slack_s or min(row["stall_s"], row["tail_s"]) < -slack_s:
        wrong.append(f"overlap {row['overlap_s']} s + stall {row['stall_s']} s + tail {row['tail_s']} s is not "
                     f"the build's {row['build_s']} s")
    if row["overlap_frac"] is not None and not 0 <= row["overlap_frac"] <= 1:
        wrong.append(f"overlap fraction {row['overlap_frac']} outside [0, 1]")
    if not row["transfer_start_s"] <= row["transfer_end_s"]:
        wrong.append("the transfer ends before it starts")
    if not row["build_start_s"] <= row["build_end_s"]:
        wrong.append("the builds end before they start")
    return wrong
