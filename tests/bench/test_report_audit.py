"""What the issue 20 audit found in the report, each checked so that it cannot come back.

Checked on the committed results (what users read) and on small fake trees (how the code decides).
"""
from __future__ import annotations

import contextlib
import http.server
import io
import json
import re
import socket
import threading
from pathlib import Path

import pytest

from bench import distributions, report, target
from bench.report import page, plots, runs, tables
from bench.report.docs import dataset_note
from bench.report.sections import Answer, Context, Section
from servebench.runtime import StackState
from tests.bench.test_report import _provenance, _write, make_bench

pytestmark = pytest.mark.unit

REPO = Path(__file__).resolve().parents[2]
RESULTS = REPO / "results"
RUN_ID = re.compile(r"\b\d{8}T\d{6}Z-[a-z0-9][a-z0-9_-]*[a-z0-9]")  # model names may hold "_"


@pytest.fixture(scope="module")
def ctx() -> Context:
    return Context.read(RESULTS)


@pytest.fixture(scope="module")
def html() -> str:
    return (RESULTS / "report.html").read_text()


def edit_summary(folder: Path, **fields) -> None:
    doc = json.loads((folder / "summary.json").read_text())
    doc.update(fields)
    (folder / "summary.json").write_text(json.dumps(doc))


def build_quietly(results: Path) -> str:
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        report.build(results)
    return out.getvalue()


# --------------------------------------------------------------------------- 1. measured is measured anywhere

def test_no_measured_architecture_is_labelled_not_measured(ctx, html):
    measured = runs.measured_by(ctx.runs)
    assert {"triton", "stream-tcp", "stream-ws", "stream-grpc"} <= set(measured)
    hop_runs = [r for r in ctx.selected if r.get("hops_ms")]
    for label, why in (runs.absent_labels(ctx.selected, ctx.runs) + plots.latency_gaps(ctx)
                       + plots.hop_gaps(ctx, hop_runs)):
        if label in measured:
            assert why != runs.NOT_MEASURED, label
    for arch in measured:
        assert f"{arch} ({runs.NOT_MEASURED})" not in html
    assert "stream-tcp (measured in the Streaming section: frames, not requests)" in html


def test_a_study_run_measures_the_architectures_of_its_rows(tmp_path):
    make_bench(tmp_path, "FAKE-20250101T010000Z-embedded", "embedded", "2025-01-01T01:00:00+00:00")
    _write(tmp_path / "FAKE-20250101T020000Z-sweep-triton", {
        "kind": "sweep", "run_id": "FAKE-20250101T020000Z-sweep-triton", "arch": "triton", "interrupted": False,
        **_provenance("2025-01-01T02:00:00+00:00")})
    _write(tmp_path / "FAKE-20250101T030000Z-streaming", {
        "kind": "streaming", "run_id": "FAKE-20250101T030000Z-streaming", "study": "streaming",
        "interrupted": False, "rows": [{"arch": "stream-ws"}, {"arch": "fastapi"}],
        **_provenance("2025-01-01T03:00:00+00:00")})
    found, _ = runs.load_runs(tmp_path)
    why = dict(runs.absent_labels(runs.comparison_runs(found), found))
    assert why["triton"] == "measured in the Saturation section (sweep runs): no default-workload bench run"
    assert why["stream-ws"] == "measured in the Streaming section: frames, not requests"
    assert why["stream-tcp"] == why["tfserving-rest"] == runs.NOT_MEASURED
    assert "embedded" not in why
    ctx = Context.read(tmp_path)  # the page's own parts (the fake study run has no rows its section reads)
    html = page.render(page.context(ctx, [tables.summary_row(r) for r in ctx.runs], [], []))
    assert "triton (measured in the Saturation section (sweep runs)" in html
    assert f"tfserving-rest ({runs.NOT_MEASURED})" in html


# --------------------------------------------------------------------------- 2. the latency distribution

def test_comparison_runs_without_latency_hdr_say_so(ctx):
    gaps = dict(plots.latency_gaps(ctx))
    drawn = {r.arch for r in ctx.drawn}
    lacking = [r for r in ctx.selected if r.arch not in drawn]
    names = runs.labels(lacking)
    for run in lacking:
        assert gaps[names[run.run_id]] == runs.NO_HDR
    noted = " ".join(ctx.notes)
    keys = {(r.arch, r.runtime, r.codec) for r in ctx.drawn}
    for run in ctx.selected:  # every run left out is named in the page's notes
        if (run.arch, run.runtime, run.codec) not in keys:
            assert f"{run.run_id}: {runs.NO_HDR}" in noted
    assert all(why != runs.NOT_MEASURED for label, why in gaps.items() if label in runs.measured_by(ctx.runs))


def test_the_saturation_architectures_are_drawn_from_committed_distributions(ctx):
    drawn = {r.arch: r for r in ctx.drawn}
    assert {"embedded", "flask", "fastapi", "triton"} <= set(drawn)
    for run in drawn.values():
        assert all((r.path / distributions.FILE).is_file() for r in ctx.latency_runs[run.run_id])
    assert not [label for label, _ in plots.latency_gaps(ctx) if label.split(" ")[0] in drawn]


def test_a_committed_latency_hdr_is_drawn_without_requests_csv(tmp_path):
    make_bench(tmp_path, "FAKE-20250101T010000Z-embedded", "embedded", "2025-01-01T01:00:00+00:00")
    make_bench(tmp_path, "FAKE-20250101T020000Z-flask", "flask", "2025-01-01T02:00:00+00:00")
    tally = distributions.LatencyTally()
    for ms in (3.0, 3.2, 3.5, 9.0):
        tally.record(0, ms)
    distributions.write(tmp_path / "FAKE-20250101T010000Z-embedded", tally)
    for folder in tmp_path.iterdir():
        (folder / "requests.csv").unlink()  # what a clone has
    gaps = dict(plots.latency_gaps(Context.read(tmp_path)))
    assert "embedded" not in gaps and gaps["flask"] == runs.NO_HDR


# --------------------------------------------------------------------------- 3. notes cite only runs that exist

def test_every_run_id_the_committed_page_cites_exists(html):
    cited = set(RUN_ID.findall(html))
    assert cited
    missing = sorted(c for c in cited if not (RESULTS / c / "summary.json").is_file())
    assert missing == []


def test_a_folder_without_a_record_is_printed_not_cited(tmp_path):
    make_bench(tmp_path, "FAKE-20250101T010000Z-embedded", "embedded", "2025-01-01T01:00:00+00:00")
    (tmp_path / "20250101T020000Z-serverless").mkdir()  # a run still going, or killed before its record
    out = build_quietly(tmp_path)
    assert "skipped 20250101T020000Z-serverless: no summary.json" in out
    assert "20250101T020000Z-serverless" not in (tmp_path / "report.html").read_text()


# --------------------------------------------------------------------------- 4. an ensemble member alone

def _member_alone(root: Path, run_id: str, members: str, created: str, batch: int = 1) -> None:
    make_bench(root, run_id, "fastapi", created)
    doc = json.loads((root / run_id / "summary.json").read_text())
    doc["settings"]["batch"] = batch
    edit_summary(root / run_id, arch="ensemble-parallel", settings=doc["settings"],
                 stack={"knobs": {"SB_ENSEMBLE_MEMBERS": members}})


def test_a_single_member_ensemble_run_is_shown_as_that_member(tmp_path):
    _member_alone(tmp_path, "FAKE-20250101T010000Z-ensemble", "cnn,resnet20,mobilenetv2", "2025-01-01T01:00:00+00:00")
    _member_alone(tmp_path, "FAKE-20250101T020000Z-cnn", "cnn", "2025-01-01T02:00:00+00:00")
    found, _ = runs.load_runs(tmp_path)
    by_id = {r.run_id: r for r in found}
    assert by_id["FAKE-20250101T020000Z-cnn"].shown_arch == "ensemble member cnn (alone)"
    assert by_id["FAKE-20250101T010000Z-ensemble"].shown_arch == "ensemble-parallel"
    # The newer member alone never stands for the ensemble.
    assert [r.run_id for r in runs.comparison_runs(found)] == ["FAKE-20250101T010000Z-ensemble"]
    assert "FAKE-20250101T020000Z-cnn" not in runs.load_sweep_runs(found)
    build_quietly(tmp_path)
    row = (tmp_path / "report.html").read_text().split("FAKE-20250101T020000Z-cnn</td>", 1)[1].split("</tr>")[0]
    assert "ensemble member cnn (alone)" in row and "ensemble-parallel" not in row


def test_the_committed_single_member_runs_are_named_as_members(ctx, html):
    alone = [r for r in ctx.runs if r.member_alone]
    assert len(alone) == 12
    rows = html.split('id="all-runs"', 1)[1]
    for run in alone:
        row = rows.split(f"{run.run_id}</td>", 1)[1].split("</tr>")[0]
        assert f"ensemble member {run.member_alone} (alone)" in row


# --------------------------------------------------------------------------- 5. the concurrency axis is batch 1

def test_the_load_plot_draws_only_one_image_requests(ctx, tmp_path):
    for by in ("concurrency", "rate"):
        for key, points in runs.load_series(ctx.runs, by).items():
            assert key[3] == 1 and all(r.batch == 1 for r in points.values()), key
    make_bench(tmp_path, "FAKE-20250101T010000Z-embedded", "embedded", "2025-01-01T01:00:00+00:00")
    _member_alone(tmp_path, "FAKE-20250101T020000Z-ensemble", "cnn,resnet20", "2025-01-01T02:00:00+00:00",
                  batch=1000)
    found, _ = runs.load_runs(tmp_path)
    assert runs.load_sweep_runs(found) == ["FAKE-20250101T010000Z-embedded"]


# --------------------------------------------------------------------------- 6. settings of a stack without a front end

def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def _info_server(doc: dict):
    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            body = json.dumps(doc).encode() if self.path == "/v1/info" else b"no"
            self.send_response(200 if self.path == "/v1/info" else 404)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server.server_address[1]
    finally:
        server.shutdown()
        server.server_close()


def _stream_state(ws_port: int) -> StackState:
    return StackState(Path("."), {"arch": "stream-tcp", "url": f"http://127.0.0.1:{_free_port()}",
                                  "knobs": {"SB_STREAM_WS_PORT": str(ws_port)}, "services": {}})


def test_a_stream_stack_records_its_servers_own_info():
    with _info_server({"arch": "stream", "settings": {"stream_window": 8}}) as port:
        record = target.stack_record(_stream_state(port))
    assert record["info"] == {"arch": "stream", "settings": {"stream_window": 8}}
    assert record["info_source"] == "GET /v1/info of the stream server (no front end)"


def test_without_any_info_the_record_keeps_the_settings_the_stack_started_with():
    record = target.stack_record(_stream_state(_free_port()))
    assert "error" not in record["info"] and record["info"]["settings"]["stream_window"] >= 1
    assert record["info_source"].startswith("the settings the harness started the stack with")


# --------------------------------------------------------------------------- 7. accuracy answers carry the dataset note

def test_an_answer_quoting_accuracy_carries_the_dataset_note():
    sections = [Section("A", study="ensemble", answer=Answer("Averaging adds +2.85 points of accuracy.")),
                Section("B", study="streaming", answer=Answer("530 frames/s against 631 in process."))]
    cards = page.answers(sections)
    assert cards[0]["note"] == dataset_note() and "JPEG" in cards[0]["note"]
    assert cards[1]["note"] == ""


def test_the_committed_answer_cards_carry_the_note(html):
    answers = html.split('<div class="answers">', 1)[1].split("</div>", 1)[0]
    cards = answers.split('<section class="answer">')[1:]
    quoting = [c for c in cards if re.search(r"accura", re.search(r"</h3>\s*<p[^>]*>(.*?)</p>", c, re.S)[1], re.I)]
    assert quoting, "no answer quotes an accuracy: the check would be empty"
    for card in quoting:
        assert "rebuilt from JPEG files" in card
