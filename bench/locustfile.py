"""Locust users posting CIFAR-10 test images through nginx and checking every answer.

Run by ``bench.load`` (``make load``), which sets the host and passes the load
options as ``SB_LOAD_*`` variables, read here once as the settings' ``load``
section (:mod:`bench.knobs`; the only settings this file reads):
the request bodies' codec and batch, how many test images each process
pre-encodes and cycles through, the data folder, and the file where the master
(or the only process) writes, when it quits, the final totals: requests,
failures, latency percentiles and the accuracy counts.

An answer fails unless it is a 200 with one well-formed prediction per image;
right and wrong predictions are counted for the accuracy (from every worker,
when distributed).
"""
from __future__ import annotations

import itertools
import json

import gevent
from locust import FastHttpUser, events, stats, task
from locust.runners import MasterRunner, WorkerRunner

from servebench.settings import Settings

SETTINGS = Settings().section("load")

bodies: list[tuple[bytes, dict, list[int]]] = []  # (body, headers, labels), encoded before any user starts
counts = {"checked": 0, "correct": 0}
_next = itertools.count()


@events.init.add_listener
def encode_bodies(environment, **_):
    if isinstance(environment.runner, MasterRunner):
        return  # the master sends nothing
    from servebench import codecs, data

    batch = SETTINGS.batch
    split = data.load_test(SETTINGS.data_dir, limit=SETTINGS.images)
    for start in range(0, len(split), batch):
        body, content_type = codecs.encode(split.images[start:start + batch], SETTINGS.codec)
        bodies.append((body, {"Content-Type": content_type}, split.labels[start:start + batch].tolist()))


@events.report_to_master.add_listener
def send_counts(client_id, data, **_):
    data["sb_accuracy"] = dict(counts)
    counts["checked"] = counts["correct"] = 0


@events.worker_report.add_listener
def add_counts(client_id, data, **_):
    for key, value in data.get("sb_accuracy", {}).items():
        counts[key] += value


@events.quitting.add_listener
def write_totals(environment, **_):
    if isinstance(environment.runner, WorkerRunner):
        return
    if environment.parsed_options and environment.parsed_options.csv_prefix:
        # Locust rewrites its CSVs once a second and does not write them again when it
        # quits: let its writer run once more, so locust_stats.csv has the final numbers.
        gevent.sleep(stats.CSV_STATS_INTERVAL_SEC + 0.2)
    if SETTINGS.totals_file is None:
        return
    total = environment.stats.total
    percentile = total.get_response_time_percentile
    doc = {
        "requests": total.num_requests,
        "failures": total.num_failures,
        "requests_per_s": round(total.total_rps, 3),
        "latency_ms": {
            "p50": percentile(0.5), "p90": percentile(0.9), "p99": percentile(0.99),
            "max": round(total.max_response_time, 3), "mean": round(total.avg_response_time, 3),
        },
        "images_checked": counts["checked"],
        "images_correct": counts["correct"],
    }
    with open(SETTINGS.totals_file, "w") as f:
        json.dump(doc, f, indent=2)


def _check(answer: bytes, labels: list[int]) -> str | None:
    """None when the answer is well formed (and counted), else what is wrong with it."""
    try:
        predictions = json.loads(answer)["predictions"]
        classes = [p["class_id"] for p in predictions]
    except (ValueError, KeyError, TypeError) as exc:
        return f"unreadable predictions: {exc}"
    if len(classes) != len(labels):
        return f"{len(classes)} predictions for {len(labels)} images"
    if not all(isinstance(c, int) and 0 <= c < 10 for c in classes):
        return "class_id outside 0..9"
    counts["checked"] += len(labels)
    counts["correct"] += sum(c == t for c, t in zip(classes, labels))
    return None


class CifarUser(FastHttpUser):
    """Posts the next pre-encoded body as soon as the last answer is in (no think time)."""

    @task
    def predict(self):
        body, headers, labels = bodies[next(_next) % len(bodies)]
        with self.client.post("/v1/predict", data=body, headers=headers, name="/v1/predict",
                              catch_response=True) as resp:
            if resp.status_code != 200:
                resp.failure(f"HTTP {resp.status_code}")
                return
            problem = _check(resp.content, labels)
            if problem:
                resp.failure(problem)
