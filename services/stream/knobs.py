"""The streaming server's knobs (a section of servebench.settings.Settings)."""
from typing import Literal

from servebench.knobs import KnobSection, knob

STREAM = "stream"  # the streaming model server (services/stream)


class Knobs(KnobSection):
    stream_port: int = knob(8020, "streaming server's TCP frame port", ("nginx", STREAM), recorded=False)
    stream_ws_port: int = knob(8021, "streaming server's WebSocket port (and its /healthz)", ("nginx", STREAM),
                               recorded=False)
    stream_grpc_port: int = knob(8022, "streaming server's gRPC port", ("nginx", STREAM), recorded=False)
    stream_proxy_port: int = knob(8090, "nginx's TCP stream proxy to the streaming server (stream-tcp)", ("nginx",),
                                  recorded=False)
    stream_grpc_proxy_port: int = knob(8092, "nginx's gRPC (HTTP/2) listener for stream-grpc", ("nginx",),
                                       recorded=False)
    stream_model: Literal["cifar", "yolo-tiny"] = knob(
        "cifar", "the streaming server's model: cifar (SB_MODEL, the CIFAR-10 CNN by default; image classifiers "
                 "only) or yolo-tiny (YOLO v3 tiny's layers at "
                 "416x416, random weights: timing only)", (STREAM,))
    stream_window: int = knob(8, "frames in flight per stream: the client's window and the most a connection may "
                                 "hold unanswered in the server (beyond it the server stops reading: backpressure)",
                              (STREAM,), ge=1, le=1024)
    stream_drop: Literal["keep", "drop-oldest"] = knob(
        "keep", "when a stream's window is full: keep (stop reading until answers go out) or drop-oldest (the "
                "oldest frame not yet in the model is answered 'dropped', newest wins, as cameras do)", (STREAM,))
    stream_encoding: Literal["raw", "jpeg"] = knob("raw", "how the harness's camera encodes frames", (STREAM,))
    stream_jpeg_quality: int = knob(90, "JPEG quality of the harness's camera frames", (STREAM,), ge=1, le=100)
    stream_max_frame_kb: int = knob(1024, "largest frame payload the streaming server accepts (KiB)", (STREAM,), ge=1)
    stream_model_cpus: float = knob(0.0, "CPU quota of the streaming model process (cgroup; 0: none)", (STREAM,), ge=0)
