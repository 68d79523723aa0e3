"""What nginx adds for the streaming architectures (found by servebench.nginx_conf, like knobs.py):
stream-ws's WebSocket location, stream-grpc's HTTP/2 server, and stream-tcp's TCP proxy in nginx's
``stream`` module (dynamic in Debian: loaded when installed, else left out; stream-tcp's Need says how
to install it). ``${SB_*}`` placeholders are the knobs' values."""
from __future__ import annotations

from pathlib import Path

MODULE = Path("/usr/lib/nginx/modules/ngx_stream_module.so")  # Debian's libnginx-mod-stream

LOCATIONS = """        # stream-ws: frames as WebSocket messages
        location = /v1/stream {
            proxy_pass http://127.0.0.1:${SB_STREAM_WS_PORT};
            proxy_http_version 1.1;
            proxy_set_header Upgrade $http_upgrade;
            proxy_set_header Connection "upgrade";
            proxy_set_header Host $host;
            proxy_connect_timeout 2s;
            # A camera may pause; the stream stays open.
            proxy_read_timeout 1h;
            proxy_send_timeout 1h;
            proxy_buffering off;
        }"""

SERVERS = """    # stream-grpc: gRPC bidirectional streaming over HTTP/2 (h2c)
    server {
        listen ${SB_LISTEN}:${SB_STREAM_GRPC_PROXY_PORT} http2;
        access_log off;
        add_header X-Content-Type-Options nosniff always;
        add_header X-Frame-Options DENY always;
        add_header Content-Security-Policy "default-src 'none'; frame-ancestors 'none'" always;
        # One call carries the whole stream: no body limit; the server limits each frame (SB_STREAM_MAX_FRAME_KB).
        client_max_body_size 0;
        client_body_timeout 1h;
        location / {
            grpc_pass grpc://127.0.0.1:${SB_STREAM_GRPC_PORT};
            grpc_connect_timeout 2s;
            grpc_read_timeout 1h;
            grpc_send_timeout 1h;
        }
    }"""

TCP_PROXY = """# stream-tcp: length-prefixed frames on one TCP connection, passed through as they are.
stream {
    server {
        listen ${SB_LISTEN}:${SB_STREAM_PROXY_PORT};
        proxy_pass 127.0.0.1:${SB_STREAM_PORT};
        proxy_connect_timeout 2s;
        # A camera may pause; the connection stays open.
        proxy_timeout 1h;
        tcp_nodelay on;
        # The client's half-close (its last frame sent) reaches the server; the answers still come back.
        proxy_half_close on;
    }
}"""


def fragments(settings, module: Path = MODULE) -> dict[str, str]:
    """nginx_conf's parts: main (before events), locations (in the front end's server), servers, toplevel."""
    if not module.exists():
        return {"main": f"# {module} is not installed (libnginx-mod-stream): no TCP stream proxy",
                "locations": LOCATIONS, "servers": SERVERS}
    return {"main": f"load_module {module};", "locations": LOCATIONS, "servers": SERVERS, "toplevel": TCP_PROXY}
