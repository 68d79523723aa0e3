"""Ray drivers the supervisor runs inside the cluster's network namespace; each prints one JSON document.

    python -m services.rayserve.driver deploy --address HOST:PORT --serve-host H --timeout-s 300
    python -m services.rayserve.driver status --address HOST:PORT

A driver runs beside the cluster, never on the host: its own core worker opens ports, which on the
host would listen on the host's addresses. ``deploy`` waits for every node, starts Serve (its HTTP
proxy on the head node only, on ``--serve-host``: two proxies in one namespace would share a port),
deploys the model and waits until every replica runs. ``status`` lists the nodes and the replicas
with their state and node, from the GCS's own tables: Ray's state API (``ray.util.state``) is served
by the dashboard, which the cluster does not run.
"""
from __future__ import annotations

import argparse
import json
import sys
import time

APP = "servebench"
REPLICA_PREFIX = "SERVE_REPLICA::"  # the GCS name of a Serve replica's actor


def _connect(address: str) -> None:
    import ray

    ray.init(address=address, logging_level="ERROR", log_to_driver=False, configure_logging=False)


def nodes() -> list[dict]:
    import ray

    out = []
    for n in ray.nodes():
        resources = n.get("Resources", {})
        out.append({"node_id": n["NodeID"], "alive": bool(n["Alive"]), "head": "node:__internal_head__" in resources,
                    "address": f"{n['NodeManagerAddress']}:{n['NodeManagerPort']}",
                    "name": next((k for k in sorted(resources) if k.startswith("sb_node_")), ""),
                    "resources": {k: v for k, v in resources.items() if k == "CPU" or k.startswith("sb_")}})
    return sorted(out, key=lambda n: n["name"])


def replicas() -> list[dict]:
    from ray._private import state

    out = []
    for actor in state.actors().values():
        name = actor.get("Name") or ""
        if name.startswith(REPLICA_PREFIX) and actor.get("State") != "DEAD":
            out.append({"replica": name[len(REPLICA_PREFIX):], "state": actor.get("State"),
                        "node_id": (actor.get("Address") or {}).get("NodeID", ""), "pid": actor.get("Pid")})
    return sorted(out, key=lambda r: r["replica"])


def serve_state() -> dict:
    from ray import serve

    app = serve.status().applications.get(APP)
    if app is None:
        return {"status": "NOT_DEPLOYED", "deployments": {}}
    return {"status": str(app.status.value if hasattr(app.status, "value") else app.status),
            "deployments": {name: {"status": str(getattr(d.status, "value", d.status)),
                                   "replicas": {str(getattr(k, "value", k)): v for k, v in d.replica_states.items()}}
                            for name, d in app.deployments.items()}}


def state() -> dict:
    found = nodes()
    names = {n["node_id"]: n["name"] for n in found}
    reps = [{**r, "node": names.get(r["node_id"], "")} for r in replicas()]
    return {"nodes": found, "replicas": reps, "serve": serve_state()}


def deploy(address: str, serve_host: str, timeout_s: float) -> dict:
    from ray import serve

    from servebench.settings import Settings
    from services.rayserve.app import deployment

    settings = Settings(arch="rayserve")
    deadline = time.monotonic() + timeout_s
    _connect(address)
    while sum(n["alive"] for n in nodes()) < settings.ray_nodes:
        if time.monotonic() > deadline:
            raise TimeoutError(f"only {sum(n['alive'] for n in nodes())} of {settings.ray_nodes} Ray nodes joined")
        time.sleep(0.5)
    serve.start(proxy_location="HeadOnly", http_options={"host": serve_host, "port": settings.ray_serve_port})
    knobs = {**settings.knob_env(), "SB_MODEL_BASE": str(settings.model_base)}
    serve.run(deployment(settings, knobs), name=APP, route_prefix="/", blocking=False)
    while True:
        doc = state()
        running = [r for r in doc["replicas"] if r["state"] == "ALIVE"]
        if doc["serve"]["status"] == "RUNNING" and len(running) == settings.ray_replicas:
            return doc
        if doc["serve"]["status"] in ("DEPLOY_FAILED", "UNHEALTHY") or time.monotonic() > deadline:
            raise TimeoutError(f"Serve did not run every replica: {json.dumps(doc)}")
        time.sleep(0.5)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("cmd", choices=("deploy", "status"))
    p.add_argument("--address", required=True, help="the head node's GCS, HOST:PORT")
    p.add_argument("--serve-host", default="127.0.0.1", help="where Serve's HTTP proxy listens")
    p.add_argument("--timeout-s", type=float, default=300.0)
    a = p.parse_args(argv)
    if a.cmd == "deploy":
        doc = deploy(a.address, a.serve_host, a.timeout_s)
    else:
        _connect(a.address)
        doc = state()
    print(json.dumps(doc), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
