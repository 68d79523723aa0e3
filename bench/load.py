"""`make load`: a locust load test through a stack's nginx (``bench/locustfile.py``).

    python -m bench.load --arch ARCH [--runtime native] [--users 4] [--spawn-rate 4]
        [--duration 30s] [--workers 0] [--codec json] [--batch 1] [--ui]

Headless by default: locust's CSVs (``locust_stats.csv``, ``locust_failures.csv``,
...) and HTML report go to ``results/<run-id>/``, beside ``resources.csv``
(the services and locust's own processes, as in ``bench.run``),
``locust_totals.json`` (the final totals and accuracy counts, written by the
locustfile as locust quits) and a ``summary.json`` with those numbers (a run
record, kind ``load``). ``--ui`` serves locust's
web UI on 127.0.0.1:8089 instead, until Ctrl-C. ``--workers n`` runs locust
distributed on this machine: one master plus n worker processes, the way load
generation is spread over several machines. ``--load-hosts netns`` runs those
workers in a second network namespace joined to the host over a link-local veth
(:class:`servebench.netns.ShapedLink`, unshaped), as a second machine would be:
the master binds the veth's host-side address, and for the run nginx also listens
there (and Django allows it), nowhere wider; the summary records where they ran.

The stack is brought up and down as in ``bench.run`` (:mod:`bench.target`).
The locust processes get their options as ``SB_LOAD_*`` variables (the settings'
``load`` section, :mod:`bench.knobs`), and only those knobs.
"""
from __future__ import annotations

import hashlib
import json
import os
import signal
import socket
import sys
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Literal

import psutil

from bench import options as opts
from bench import results, target, workload
from bench.records import RunRecord
from bench.session import RunSession
from servebench import data, netns, processes
from bench.knobs import LOCUST
from servebench.runtime import StackError, part_classifiers
from servebench.settings import Settings, from_environment, inherited_env

LOCUSTFILE = Path(__file__).resolve().parent / "locustfile.py"
TOTALS_FILE = "locust_totals.json"
SIGINT_GRACE_S = 5.0
SIGTERM_GRACE_S = 10.0


class Options(opts.LoadOptions):
    """``python -m bench.load``'s options: locust's, and where its workers run."""

    load_hosts: Literal["local", "netns"] = opts.option(
        "local", "where locust's workers run: local (this host) or netns (a second network namespace over a "
                 "link-local veth, as a second machine; needs --workers, root and iproute2)")


class WorkerHosts:
    """Where the workers run, and how they reach the master and nginx: this host, or a network namespace."""

    def __init__(self, url: str, link: netns.ShapedLink | None = None):
        self.link = link
        self.master_host = link.server_addr if link else "127.0.0.1"
        self.url = url if link is None else f"http://{link.server_addr}:{url.rsplit(':', 1)[1]}"

    def argv(self, argv: list[str]) -> list[str]:
        return self.link.argv("client", argv) if self.link else argv

    def recorded(self) -> dict:
        if self.link is None:
            return {"where": "local", "how": "worker processes on this host, master on 127.0.0.1"}
        return {"where": "netns", "how": "worker processes in a network namespace of their own, joined to the host "
                                         "by a link-local veth, as a second machine would be; the master on the host",
                "namespace": self.link.client_ns, "worker_addr": self.link.client_addr,
                "master_and_nginx_addr": self.link.server_addr, **self.link.recorded()}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def locust_commands(args: opts.LoadOptions, url: str, run_dir: Path,
                    hosts: WorkerHosts | None = None) -> list[list[str]]:
    """The master (or only) locust process first, then the workers (run where ``hosts`` says)."""
    hosts = hosts or WorkerHosts(url)
    base = [sys.executable, "-m", "locust", "-f", str(LOCUSTFILE), "--host", hosts.url]
    main = [*base, "--csv", str(run_dir / "locust"), "--html", str(run_dir / "locust.html"),
            "-u", str(args.users), "-r", str(args.spawn_rate)]
    if args.ui:
        main += ["--web-host", "127.0.0.1", "--web-port", str(args.web_port)]
    else:
        main += ["--headless", "-t", args.duration, "--only-summary"]
    if not args.workers:
        return [main]
    port = _free_port()
    main += ["--master", "--master-bind-host", hosts.master_host, "--master-bind-port", str(port),
             "--expect-workers", str(args.workers)]
    worker = hosts.argv([*base, "--worker", "--master-host", hosts.master_host, "--master-port", str(port)])
    return [main] + [worker] * args.workers


def locust_settings(args: opts.LoadOptions, run_dir: Path) -> Settings:
    """The settings whose ``load`` section the locust processes get: this run's options."""
    return Settings.given(load_codec=args.codec, load_batch=args.batch, load_images=args.images,
                          load_totals_file=run_dir / TOTALS_FILE, load_data_dir=args.data_dir or data.default_dir())


def locust_env(args: opts.LoadOptions, run_dir: Path) -> dict[str, str]:
    """What the locust processes get: the platform's variables and the load settings (a locustfile's only options)."""
    return {**inherited_env(("PATH", "HOME", "LANG", "LC_ALL", "TMPDIR")), **locust_settings(args, run_dir).env_for(LOCUST),
            "PYTHONPATH": str(results.REPO_ROOT)}


def _tree(procs: list[processes.Process]) -> list[psutil.Process]:
    found = []
    for p in procs:
        try:
            leader = psutil.Process(p.pid)
            found += [leader, *leader.children(recursive=True)]
        except psutil.NoSuchProcess:
            pass
    return found


def _stop(procs: list[processes.Process]) -> None:
    """SIGINT first (locust then writes its HTML report too), SIGTERM, SIGKILL as a last resort.

    SIGTERM follows because a process started with SIGINT ignored (a background
    job of a script) passes that on to locust, which then never sees the SIGINT.
    """
    processes.stop_all(procs, [(signal.SIGINT, SIGINT_GRACE_S), (signal.SIGTERM, SIGTERM_GRACE_S)])


def locust_numbers(run_dir: Path, batch: int) -> dict | None:
    """Locust's final totals (written by the locustfile), with images/s added."""
    try:
        doc = json.loads((run_dir / TOTALS_FILE).read_text())
    except (OSError, ValueError):
        return None
    rps = doc.get("requests_per_s")
    doc["images_per_s"] = results.rounded(rps * batch, 2) if rps is not None else None
    return doc


def run(args: opts.LoadOptions, st, run_dir: Path, card=None, hosts: WorkerHosts | None = None) -> RunRecord:
    """locust against ``st`` in a run session on ``run_dir``; the record it wrote (the table printed)."""
    hosts = hosts or WorkerHosts(st.url)
    header = {"kind": "load", "study": args.study, "arch": args.arch, "runtime": args.runtime,
              "settings": {"users": args.users, "spawn_rate": args.spawn_rate,
                           "duration": None if args.ui else args.duration, "workers": args.workers,
                           "codec": args.codec, "batch": args.batch, "images": args.images,
                           "ui": args.ui, "sample_hz": args.sample_hz,
                           "load_hosts": getattr(args, "load_hosts", "local")},
              "stack": target.stack_record(st)}
    if args.workers:
        header["workers_at"] = hosts.recorded()
    procs: list[processes.Process] = []
    started = time.perf_counter()

    def summary(interrupted: bool) -> dict:
        numbers = locust_numbers(run_dir, args.batch) or {}
        checked = numbers.pop("images_checked", None)
        correct = numbers.pop("images_correct", None)
        sampler = session.sampler
        return {
            **({"model_card": workload.card_summary(card)} if card is not None else {}),
            "data": {"source": workload.CIFAR10_SOURCE, "images": args.images}, "synthetic_inputs": False,
            "locust_exit_code": procs[0].returncode if procs else None,
            "wall_s": results.rounded(time.perf_counter() - started, 3),
            "locust": numbers or None,
            "accuracy": results.rounded(correct / checked, 6) if checked else None,
            "images_checked": checked,
            "resources": sampler.summary(numbers.get("requests", 0) * args.batch),
            "sampler_cpu_seconds": results.rounded(sampler.cpu_seconds, 3),
        }

    session = RunSession(run_dir, header=header, summary=summary, table=print_table, resources_csv=True)
    with session:
        session.sample(lambda: {**st.processes(), "client": _tree(procs)}, hz=args.sample_hz,
                       origin=time.perf_counter(), parts=part_classifiers(st))
        session.on_close(lambda: _stop(procs))  # the master has ended (or is told to); the workers follow it
        env = locust_env(args, run_dir)
        started = time.perf_counter()
        try:
            for cmd in locust_commands(args, st.url, run_dir, hosts):
                # Their own session: a terminal's Ctrl-C reaches only us, and we pass on one SIGINT.
                procs.append(processes.launch(cmd, env=env, cwd=results.REPO_ROOT))
            if args.ui:
                print(f"locust web UI: http://127.0.0.1:{args.web_port}  (Ctrl-C to stop)", flush=True)
            while procs[0].poll() is None:
                time.sleep(0.2)  # short sleeps: Ctrl-C and SIGTERM are handled here
        except KeyboardInterrupt:
            session.interrupted = not args.ui  # Ctrl-C is how a web-UI session ends
    return session.record


def print_table(doc: dict, run_dir: Path) -> None:
    s, n = doc["settings"], doc["locust"]
    print(f"\nload {doc['arch']} ({doc['runtime']}): {s['users']} users, {s['workers']} workers, batch {s['batch']}, "
          f"{s['codec']}" + ("  INTERRUPTED" if doc["interrupted"] else ""))
    if doc.get("workers_at", {}).get("where") == "netns":
        print(f"  workers in namespace {doc['workers_at']['namespace']} ({doc['workers_at']['worker_addr']}), "
              f"nginx and the master on {doc['workers_at']['master_and_nginx_addr']}")
    if n:
        lat = n["latency_ms"]
        print(f"  {n['requests']} requests, {n['failures']} failures, {n['requests_per_s']} req/s "
              f"({n['images_per_s']} images/s), accuracy {doc['accuracy']}")
        print(f"  latency ms  p50 {lat['p50']}  p90 {lat['p90']}  p99 {lat['p99']}  max {lat['max']}")
    for name, r in doc["resources"].items():
        print(f"  {name:<10} cpu {r['cpu_percent_mean']}%  RSS {r['rss_mb_mean']} MB  PSS {r['pss_mb_mean']} MB")
    print(f"  results in {run_dir}")


def _netns_unusable(options: Options) -> str | None:
    if not options.workers:
        return "LOAD_HOSTS=netns runs locust's workers in a second namespace: give WORKERS=n (n >= 1)"
    if options.runtime != "native" or options.ui:
        return "LOAD_HOSTS=netns runs with RUNTIME=native, headless (not load-ui)"
    why = netns.unavailable()
    return f"LOAD_HOSTS=netns: {why}" if why else None


def _nginx_conf(st) -> Path:
    command = st.doc["services"]["nginx"]["command"]
    return Path(command[command.index("--prefix") + 1]) / "nginx.conf"


@contextmanager
def nginx_also_on(st, addr: str):
    """nginx of the native stack ``st`` also listens on ``addr`` (its port), until the block ends: its rendered
    configuration gets one more listen line and is reloaded (SIGHUP), then restored and reloaded again."""
    conf = _nginx_conf(st)
    original = conf.read_text()
    port = st.doc["services"]["nginx"]["port"]
    listen = next((line for line in original.splitlines()
                   if line.strip().startswith("listen ") and f":{port}" in line), None)
    if listen is None:
        raise StackError(f"no listen line in {conf}")
    extra = listen.replace(listen.split()[1], f"{addr}:{port}" + (";" if listen.split()[1].endswith(";") else ""))
    pid = st.doc["services"]["nginx"]["pid"]
    conf.write_text(original.replace(listen, f"{listen}\n{extra}", 1))
    try:
        os.kill(pid, signal.SIGHUP)
        deadline = time.monotonic() + 15
        while not _accepts(addr, port):
            if time.monotonic() > deadline:
                raise StackError(f"nginx did not listen on {addr}:{port} after a reload")
            time.sleep(0.1)
        yield
    finally:
        conf.write_text(original)
        os.kill(pid, signal.SIGHUP)


def _accepts(addr: str, port: int) -> bool:
    try:
        socket.create_connection((addr, port), timeout=1).close()
        return True
    except OSError:
        return False


def load(options: opts.LoadOptions, settings: Settings) -> RunRecord:
    """A locust run against the running stack of ``options.arch``, or one started (and stopped) here."""
    card = workload.read_model(settings)  # a bad MODEL or DATA fails here, before anything starts
    if card.data != "cifar10" or not card.is_image or workload.data_of(settings):
        raise workload.WorkloadError(f"make load's locust users send CIFAR-10 test images over /v1/predict; for "
                                     f"{card.name} on its own inputs use make bench or make soak (bench/workload.py)")
    if getattr(options, "load_hosts", "local") == "netns":
        return _load_from_netns(options, settings, card)
    with target.stack_for(options.arch, options.runtime, options.run_dir, settings) as (st, _started):
        record = run(options, st, results.new_run_dir(f"load-{options.arch}", options.out), card)
    return record


def _load_from_netns(options: Options, settings: Settings, card) -> RunRecord:
    """The workers in a namespace of their own: the link first (its address is the stack's), then a stack
    started here whose Django allows that address, nginx also on it for the run."""
    why = _netns_unusable(options)
    if why:
        raise StackError(why)
    name = "load" + hashlib.sha1(str(os.getpid()).encode()).hexdigest()[:6]
    with netns.ShapedLink(name, rate_mbit=None) as link:
        settings = settings.model_copy(update={"allowed_hosts": (*settings.allowed_hosts, link.server_addr)})
        with target.stack_for(options.arch, options.runtime, options.run_dir, settings) as (st, started):
            if not started:
                raise StackError(
                    "LOAD_HOSTS=netns starts its own stack (its Django must allow the link's address): a "
                    f"{st.arch} stack is running; `make down` first")
            with nginx_also_on(st, link.server_addr):
                return run(options, st, results.new_run_dir(f"load-{options.arch}", options.out), card,
                           WorkerHosts(st.url, link))


def main(argv=None) -> int:
    options = opts.parse(Options, argv, __doc__)
    record, rc = target.command(lambda: load(options, from_environment()))
    if rc is not None:
        return rc
    if record.interrupted:
        return 130
    if record.get("locust") is None:
        print("error: locust wrote no statistics (see its output above)", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
