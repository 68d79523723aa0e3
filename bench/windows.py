"""A level's measurement windows: answers sorted by the window they completed in, and each window's figures.

Window k spans ``edges[k] <= end < edges[k + 1]``: a request belongs to the
window in which it completes (one in flight at an edge counts where it ends).
The stepped shape's stability rule (:mod:`bench.shapes`) judges these figures.
"""
from __future__ import annotations

import bisect

import numpy as np

from bench import client, results


def window_stats(rs: list[client.Result], start: float, end: float, origin: float) -> dict:
    """One window's figures from the results that completed in it (``start <= r.end < end``)."""
    ok = [r for r in rs if r.ok]
    seconds = end - start
    lat = np.asarray([r.latency_ms for r in ok], dtype=float)
    images = sum(r.request.images for r in ok)
    return {
        "start_s": round(start - origin, 3), "end_s": round(end - origin, 3), "seconds": round(seconds, 4),
        "requests": len(rs), "images": images, "errors": len(rs) - len(ok),
        "throughput_images_per_s": results.rounded(images / seconds, 2) if seconds > 0 else None,
        "p50_ms": results.rounded(float(np.percentile(lat, 50))) if lat.size else None,
        "p99_ms": results.rounded(float(np.percentile(lat, 99))) if lat.size else None,
        "mean_ms": results.rounded(float(lat.mean())) if lat.size else None,
    }


class WindowLog:
    """Results sorted into the windows they completed in, as they come.

    Results are taken from the load's list incrementally (each once); one that
    completed before the first edge (warm-up) is dropped, one after the last
    edge waits for the next edge (or is dropped at the end: in flight when the
    level stopped).
    """

    def __init__(self):
        self.edges: list[float] = []
        self.per_window: list[list[client.Result]] = []
        self._taken = 0
        self._pending: list[client.Result] = []

    def edge(self, t: float) -> None:
        self.edges.append(t)
        if len(self.edges) > 1:
            self.per_window.append([])

    def take(self, got: list[client.Result]) -> None:
        new = got[self._taken:len(got)]
        self._taken += len(new)
        waiting, self._pending = self._pending + new, []
        for r in waiting:
            k = bisect.bisect_right(self.edges, r.end) - 1
            if k >= len(self.per_window):
                self._pending.append(r)
            elif k >= 0:
                self.per_window[k].append(r)

    def stats(self, origin: float, first: int = 0) -> list[dict]:
        return [window_stats(w, self.edges[k], self.edges[k + 1], origin)
                for k, w in enumerate(self.per_window) if k >= first]
