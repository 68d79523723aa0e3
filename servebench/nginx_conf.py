"""Render nginx/nginx.conf.template from the settings, and optionally run nginx.

    python -m servebench.nginx_conf --prefix DIR [--exec]

Both runtimes use this (the registry's nginx command, with the prefix each
runtime gives), so nginx sees the same configuration natively and in its
container. nginx's own ``$variables`` pass through untouched: only the
``${NAME}`` placeholders this module knows are substituted.
"""
from __future__ import annotations

import argparse
import os
import shutil
import sys
from pathlib import Path

from servebench.settings import Settings, from_environment

TEMPLATE = Path(__file__).resolve().parent.parent / "nginx" / "nginx.conf.template"
TEMP_DIRS = ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")


def render(prefix: Path, settings: Settings) -> str:
    values = {
        "PREFIX": str(prefix),
        "SB_LISTEN": settings.listen,
        "SB_PORT": str(settings.port),
        "SB_FRONTEND_PORT": str(settings.frontend_port),
        "SB_MAX_BODY": f"{settings.max_body_mb}m",
        "SB_CONN_LIMIT": str(settings.conn_limit),
        **stream_values(settings),  # issue 11
    }
    text = TEMPLATE.read_text()
    for name, value in values.items():
        text = text.replace("${%s}" % name, value)
    return text


# --- streaming (issue 11) ---
STREAM_MODULE = Path("/usr/lib/nginx/modules/ngx_stream_module.so")  # Debian's libnginx-mod-stream


def stream_values(settings: Settings, module: Path = STREAM_MODULE) -> dict[str, str]:
    """stream-tcp's proxy: nginx's ``stream`` module (dynamic in Debian: loaded when installed, else left out,
    and stream-tcp's registry record says how to install it) and the WebSocket and gRPC ports."""
    values = {"SB_STREAM_WS_PORT": str(settings.stream_ws_port), "SB_STREAM_GRPC_PORT": str(settings.stream_grpc_port),
              "SB_STREAM_GRPC_PROXY_PORT": str(settings.stream_grpc_proxy_port)}
    if not module.exists():
        values["SB_STREAM_MODULE"] = f"# {module} is not installed (libnginx-mod-stream): no TCP stream proxy"
        values["SB_STREAM_BLOCK"] = ""
        return values
    values["SB_STREAM_MODULE"] = f"load_module {module};"
    values["SB_STREAM_BLOCK"] = f"""# stream-tcp: length-prefixed frames on one TCP connection, passed through as they are.
stream {{
    server {{
        listen {settings.listen}:{settings.stream_proxy_port};
        proxy_pass 127.0.0.1:{settings.stream_port};
        proxy_connect_timeout 2s;
        # A camera may pause; the connection stays open.
        proxy_timeout 1h;
        tcp_nodelay on;
        # The client's half-close (its last frame sent) reaches the server; the answers still come back.
        proxy_half_close on;
    }}
}}"""
    return values
# --- end streaming (issue 11) ---


def write(prefix: Path, settings: Settings) -> Path:
    prefix = prefix.resolve()
    for d in TEMP_DIRS:
        (prefix / d).mkdir(parents=True, exist_ok=True)
        if os.geteuid() == 0:
            # A root master runs workers as nobody; they write request bodies here.
            shutil.chown(prefix / d, user="nobody")
    conf = prefix / "nginx.conf"
    conf.write_text(render(prefix, settings))
    return conf


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--prefix", type=Path, required=True, help="nginx's folder: config, pid, logs, temp files")
    p.add_argument("--exec", action="store_true", help="replace this process with nginx in the foreground")
    args = p.parse_args(argv)
    conf = write(args.prefix, from_environment())
    if not args.exec:
        print(conf)
        return 0
    nginx = shutil.which("nginx") or ("/usr/sbin/nginx" if Path("/usr/sbin/nginx").exists() else None)
    if nginx is None:
        print("nginx is not installed: `apt-get install nginx-light` (or run `make setup`)", file=sys.stderr)
        return 127
    os.execv(nginx, [nginx, "-p", str(args.prefix.resolve()), "-c", str(conf), "-e", str(args.prefix.resolve() / "error.log"), "-g", "daemon off;"])


if __name__ == "__main__":
    sys.exit(main())
