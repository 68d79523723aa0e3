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
import re
import shutil
import sys
from pathlib import Path

from servebench.settings import Settings, from_environment, load_plugin_module, plugin_modules

TEMPLATE = Path(__file__).resolve().parent.parent / "nginx" / "nginx.conf.template"
TEMP_DIRS = ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
_REF = re.compile(r"\$\{(SB_[A-Z0-9_]+)\}")


def render(prefix: Path, settings: Settings) -> str:
    values = {
        "PREFIX": str(prefix),
        "SB_LISTEN": settings.listen,
        "SB_PORT": str(settings.port),
        "SB_FRONTEND_PORT": str(settings.frontend_port),
        "SB_MAX_BODY": f"{settings.max_body_mb}m",
        "SB_CONN_LIMIT": str(settings.conn_limit),
        **{f"SB_NGINX_{part.upper()}": text for part, text in fragments(settings).items()},
    }
    text = TEMPLATE.read_text()
    for name, value in values.items():
        text = text.replace("${%s}" % name, value)
    return text


PARTS = ("main", "locations", "servers", "toplevel")  # where a folder's fragments go in the template


def fragments(settings: Settings) -> dict[str, str]:
    """What the folders add (each folder's ``nginx.py``: ``fragments(settings) -> {part: text}``), joined by
    part in folder order; ``${SB_*}`` in them are the knobs' values."""
    joined: dict[str, list[str]] = {part: [] for part in PARTS}
    for dotted, path in plugin_modules("nginx"):
        for part, text in load_plugin_module(dotted, path).fragments(settings).items():
            if part not in joined:
                raise ValueError(f"{path}: unknown nginx part {part!r}: one of {', '.join(PARTS)}")
            joined[part].append(text)
    knobs = settings.knob_env()
    return {part: _REF.sub(lambda m: knobs.get(m.group(1), m.group(0)), "\n".join(texts))
            for part, texts in joined.items()}




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
