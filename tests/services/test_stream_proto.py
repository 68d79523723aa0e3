"""`make stream-proto`'s command regenerates exactly the committed gRPC code of the streaming server."""
from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.unit
def test_the_committed_grpc_code_is_what_the_proto_generates(tmp_path):
    recipe = re.search(r"^stream-proto:.*\n\t(.+)$", (REPO / "Makefile").read_text(), re.M).group(1)
    assert "grpc_tools.protoc" in recipe and "services/stream/stream.proto" in recipe
    (tmp_path / "services/stream").mkdir(parents=True)
    shutil.copy(REPO / "services/stream/stream.proto", tmp_path / "services/stream/stream.proto")
    subprocess.run([sys.executable, "-m", "grpc_tools.protoc", "-I.", "--python_out=.", "--grpc_python_out=.",
                    "services/stream/stream.proto"], cwd=tmp_path, check=True, timeout=120)
    for name in ("stream_pb2.py", "stream_pb2_grpc.py"):
        assert (tmp_path / "services/stream" / name).read_text() == (REPO / "services/stream" / name).read_text(), name
