"""Every stream architecture of the registry through nginx (one native stack serves all that share services:
stream-tcp, -ws and -grpc are three doors of one), the harness's `make bench ARCH=stream-tcp` path, the per-request baselines' client, and a stream over a shaped link."""
from __future__ import annotations

import numpy as np
import pytest

from bench.studies.streaming import client as sc
from bench.options import BenchOptions
from servebench import netns, registry
from tests.conformance import params, stream_architectures, transport_of

pytestmark = pytest.mark.integration


def _stream_module_missing():
    need = registry.get("stream-tcp").unmet("native")
    return " ".join(need) if need else None


@pytest.fixture(scope="module")
def stack_for(start_stack):
    """stack_for(arch) -> a stack running arch's services: one per distinct set, started for the first asked."""
    started = {}

    def get(arch: str):
        services = registry.get(arch).services
        if services not in started:
            started[services] = start_stack(arch, stream_window=4)
        return started[services]

    return get


@pytest.fixture(scope="module")
def stack(stack_for):
    why = _stream_module_missing()
    if why:
        pytest.skip(why)
    return stack_for("stream-tcp")


@pytest.mark.parametrize("arch", params(stream_architectures()))
def test_every_door_of_nginx_answers_as_the_model_does(stack_for, test_split, core, arch):
    door = transport_of(registry.get(arch))
    camera = sc.Camera(test_split.images[:32], test_split.labels[:32])
    host, port = sc.endpoint(door, stack_for(arch).settings)
    rs, _, _ = sc.stream(sc.transport_for(door, camera, host, port, 4), 32, None, 4)
    assert [r.kind for r in rs] == ["answer"] * 32
    assert np.array_equal([r.cls for r in rs], core.predict(camera.images).classes)


def test_make_bench_writes_a_stream_record(stack, tmp_path, cifar_dir):
    from bench import run

    options = BenchOptions(arch="stream-tcp", n=30, rate=60, warmup=5, out=tmp_path, data_dir=cifar_dir,
                           progress=False, run_dir=stack.run_dir)
    [record] = run.bench(options, stack.settings, log=lambda *_: None)
    assert record.kind == "stream" and record.get("stream", "answered") == 30
    assert record.get("stream", "accuracy") > 0.5 and record.get("settings", "transport") == "tcp"
    assert (tmp_path / record.run_id / "frames.csv").is_file()


def test_http_baselines_answer_through_the_fastapi_stack(start_stack, test_split, core):
    st = start_stack("fastapi", backend_workers=1, frontend_workers=1)
    camera = sc.Camera(test_split.images[:16], test_split.labels[:16])
    for transport in ("http", "http-new"):
        host, port = sc.endpoint(transport, st.settings)
        rs, _, _ = sc.stream(sc.transport_for(transport, camera, host, port, 2), 16, None, 2)
        assert [r.kind for r in rs] == ["answer"] * 16, [r.message for r in rs]
        assert np.array_equal([r.cls for r in rs], core.predict(camera.images).classes)


@pytest.mark.slow
def test_a_stream_over_a_shaped_link(tmp_path, cifar_dir):
    """The client in its own namespace, 20 Mbit/s tbf: the link's measured rate within 10%, frames answered."""
    why = netns.unavailable() or _stream_module_missing()
    if why:
        pytest.skip(why)
    import json
    import sys

    from servebench import stack as native
    from servebench.settings import REPO_ROOT
    from tests.stacks import stack_settings

    with netns.ShapedLink("sbtest", 20.0) as link:
        assert abs(link.measure_mbit(2, "up") - 20.0) / 20.0 < 0.10
        settings = stack_settings(listen=link.server_addr)
        run_dir = tmp_path / "run"
        native.up("stream-tcp", settings, run_dir, log=lambda *_: None)
        try:
            out = tmp_path / "client.json"
            proc = link.popen("client", [sys.executable, "-m", "bench.studies.streaming.client", "--transport", "tcp",
                                         "--host", link.server_addr, "--port", str(settings.stream_proxy_port),
                                         "--n", "30", "--rate", "30", "--warmup", "2", "--wire",
                                         "--data-dir", str(cifar_dir), "--json", str(out)],
                              cwd=REPO_ROOT, env={"PYTHONPATH": str(REPO_ROOT), "PATH": "/usr/bin:/bin"})
            assert proc.wait(timeout=180) == 0
            summary = json.loads(out.read_text())["summary"]
            assert summary["answered"] == 30
            assert summary["wire_up_bytes_per_frame"] > 3104  # the frame plus TCP/IP headers
        finally:
            native.down(run_dir, log=lambda *_: None)
