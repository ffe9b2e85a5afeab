#!/usr/bin/env python3
"""bench_check: citewatch's ``check`` on the shared link-checker benchmark, side by side with peers.

Usage:  .venv/bin/python benchmarks/bench_check.py [--links 2000] [--hosts 50] [--latency-ms 50]
                                                    [--reps 3] [--concurrency 100] [--per-host 10]

Same emulator, corpus and settings as ``../shared/bench/run_peers.sh`` (PROFILE=equal): M links
round-robin over H loopback hosts (127.0.0.2…), 50 ms per request, 100 global slots, 10 per host.
If ``../shared/bench`` is missing, the project's own simweb (tests/support/simweb.py, the same
path language) stands in, reached through a ``--connect-to`` rule, and the peer table is omitted.

When lychee is installed (``$LYCHEE``, ``lychee`` on PATH, or ``/tmp/peers/venv/bin/lychee`` from
``../shared/bench/install_peers.sh``) and the shared corpus is in use, lychee runs in the same
session, interleaved with citewatch rep by rep, with run_peers.sh's PROFILE=equal flags, so the
comparison is made under the same load; ``--no-lychee`` skips it. So does, always, the
reference client (reference_client.py: the least a Python process can do for this workload,
judging nothing), whose row shows how much of a wall time the emulator and CPython take.

Each repetition: a fresh SQLite file is seeded with the corpus (the scan step, not timed), then
the check runs in a child process measured like the peers are under ``/usr/bin/time`` (wall,
peak RSS, CPU), twice: as ``citewatch check --all --one-shot --json …`` (the CLI users run: typer,
rich, JSON output included) and as a bare process that imports the library and calls run_check
(imports, DB, probing, verdicts). The check's own wall time (run_check alone) is printed too.
The project's bytecode is compiled first, as ``pip install`` does. ``--history`` times a periodic
audit's second run instead (one untimed check of every URL first). Scored against truth.tsv: a URL counts as reported broken when its outcome is a
failure; ``dead`` counts use one-shot verdicts (a single definitive failure), as the peers report.
"""

from __future__ import annotations

import argparse
import asyncio
import compileall
import json
import os
import random
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "bench"
FLOOR_NOTE = "floor = requests x latency / min(G, H x c)"
EXPECT = {
    "ok": "ok",
    "redirect": "ok",
    "head405": "ok",
    "slow": "ok",
    "dead": "broken",
    "gone": "broken",
    "flaky": "transient",
    "ratelimit": "transient",
}
GOOD_OUTCOMES = {"ok", "redirected"}
RIGHT_OUTCOME = {"ok": "ok", "head405": "ok", "slow": "ok", "redirect": "redirected"}
RIGHT_OUTCOME |= {"dead": "not_found", "gone": "gone", "flaky": "ok", "ratelimit": "ok"}


# -- corpus (an embedded copy of shared/bench/make_corpus.py's algorithm) -----------------------
def _path_for(kind: str, n: int) -> str:
    if kind == "redirect":
        return f"/redirect/{1 + n % 3}/{n}"
    if kind == "slow":
        return f"/slow/500/{n}"
    return f"/{kind}/{n}"


def make_corpus(
    links: int, hosts: int, port: int, mix: str, seed: int = 1
) -> list[tuple[str, str]]:
    """(url, kind) pairs, identical to make_corpus.py's output for the same arguments."""
    parts = [(k, float(w)) for k, _, w in (x.partition("=") for x in mix.split(","))]
    total = sum(w for _, w in parts)
    kinds: list[str] = []
    for kind, weight in parts:
        kinds += [kind] * int(links * weight / total)
    kinds += [parts[0][0]] * (links - len(kinds))
    random.Random(seed).shuffle(kinds)
    return [
        (f"http://127.0.0.{2 + n % hosts}:{port}{_path_for(kind, n)}", kind)
        for n, kind in enumerate(kinds)
    ]


def shared_corpus(links: int, hosts: int, port: int, mix: str, out: Path) -> list[tuple[str, str]]:
    subprocess.run(
        [sys.executable, str(SHARED / "make_corpus.py"), "--links", str(links), "--hosts",
         str(hosts), "--port", str(port), "--mix", mix, "--out", str(out)],
        check=True, capture_output=True,
    )  # fmt: skip
    rows = [line.split("\t") for line in (out / "truth.tsv").read_text().splitlines()]
    return [(url, kind) for url, kind, _ in rows]


# -- emulator -----------------------------------------------------------------------------------
def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def start_emulator(hosts: int, latency_ms: float, port: int) -> tuple[subprocess.Popen[str], int]:
    """Start the shared simweb (or ours); returns the process and the port to connect to."""
    if SHARED.is_dir():
        cmd = [sys.executable, str(SHARED / "simweb.py"), "--hosts", str(hosts), "--port",
               str(port), "--latency-ms", str(latency_ms), "--max-seconds", "900"]  # fmt: skip
    else:
        cmd = [sys.executable, str(ROOT / "tests" / "support" / "simweb.py"), "--port", str(port),
               "--latency-ms", str(latency_ms), "--max-seconds", "900"]  # fmt: skip
    process = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    assert process.stdout is not None
    line = process.stdout.readline()
    if not line.startswith("READY"):
        process.kill()
        raise SystemExit(f"emulator did not start: {line}")
    return process, port


# -- one measured check (child process) ------------------------------------------------------
def worker(db: str, options: str) -> None:
    """Run in the child: open the seeded DB, run the check, print figures as JSON."""
    opts = json.loads(options)
    started = time.perf_counter()
    from citewatch.check.runner import run_check
    from citewatch.config import Settings
    from citewatch.net import ConnectTo
    from citewatch.progress import NullReporter
    from citewatch.store import Store

    settings = Settings(per_host=opts["per_host"], one_shot=True, check_all=True)
    settings.net.concurrency = opts["concurrency"]
    settings.net.allow_private = True
    settings.canary = opts["canary"]
    settings.net.connect_to = [ConnectTo.parse(spec) for spec in opts["connect_to"]]
    store = Store.open(db)
    run_id = store.begin_run("check", ["bench"])
    imported = time.perf_counter()
    results = []

    async def main() -> None:  # the result kept out of the main task, as cli.run_async does
        results.append(await run_check(store, run_id, settings, NullReporter()))

    asyncio.run(main())
    result = results[0]
    checked = time.perf_counter()
    store.finish_run(run_id, counts=result.summary)
    outcomes = {item["url"]: (item["outcome"], item["verdict"]) for item in result.urls}
    print(json.dumps({
        "startup_s": imported - started, "check_s": checked - imported,
        "network": result.network, "outcomes": outcomes, "summary": result.summary,
    }))  # fmt: skip
    sys.stdout.flush()
    import gc

    gc.freeze()  # as citewatch.cli.main does before the process exits


def run_measured(cmd: list[str], **popen: object) -> tuple[str, str, int, dict[str, float]]:
    """Run ``cmd`` as a child; (stdout, stderr, exit code, figures): the wall time, peak RSS and
    CPU of that process, as /usr/bin/time measures the peers."""
    began = time.perf_counter()
    child = subprocess.Popen(
        cmd, stdout=popen.pop("stdout", subprocess.PIPE), stderr=subprocess.PIPE, text=True,
        **popen,  # type: ignore[arg-type]
    )  # fmt: skip
    assert child.stderr is not None
    out = child.stdout.read() if child.stdout is not None else ""
    err = child.stderr.read()
    _, status, usage = os.wait4(child.pid, 0)
    wall = time.perf_counter() - began
    figures = {"wall_s": wall, "rss_mb": usage.ru_maxrss / 1024,
               "cpu_s": usage.ru_utime + usage.ru_stime}  # fmt: skip
    return out, err, os.waitstatus_to_exitcode(status), figures


def measure(db: str, options: dict[str, object]) -> dict[str, object]:
    """Run the worker as a child, measured (see :func:`run_measured`)."""
    out, err, code, figures = run_measured(
        [sys.executable, __file__, "--worker", db, json.dumps(options)]
    )
    if code != 0:
        raise SystemExit(f"worker failed ({code}):\n{err}")
    data = json.loads(out)
    data.update(figures)
    return data


def measure_cli(db: str, options: dict[str, object]) -> dict[str, object]:
    """``citewatch check`` itself (typer, rich, JSON output and all), measured like ``measure``."""
    cli = Path(sys.executable).with_name("citewatch")
    cmd = [str(cli), "check", "--db", db, "--all", "--one-shot", "--json", "--allow-private",
           "--concurrency", str(options["concurrency"]), "--per-host", str(options["per_host"]),
           "--canary", str(options["canary"])]  # fmt: skip
    for rule in options["connect_to"]:  # type: ignore[attr-defined]
        cmd += ["--connect-to", rule]
    out, err, code, figures = run_measured(cmd)
    if code not in (0, 1):  # 1: broken citations found, as expected here
        raise SystemExit(f"citewatch check failed ({code}):\n{err}")
    report = json.loads(out)
    outcomes = {item["url"]: (item["outcome"], item["verdict"]) for item in report["urls"]}
    return {**figures, "outcomes": outcomes, "network": report["run"]["network"]}


def find_lychee() -> str | None:
    """The lychee binary: $LYCHEE, then PATH, then where install_peers.sh puts it."""
    for candidate in (
        os.environ.get("LYCHEE"),
        shutil.which("lychee"),
        "/tmp/peers/venv/bin/lychee",
    ):
        if candidate and os.access(candidate, os.X_OK):
            return candidate
    return None


def run_lychee(lychee: str, corpus_md: Path, report: Path, concurrency: int, per_host: int) -> dict:
    """One lychee run with run_peers.sh's PROFILE=equal flags, measured like the citewatch worker."""
    cmd = [lychee, "--no-progress", "--format", "json", "-o", str(report), "--max-concurrency",
           str(concurrency), "--host-concurrency", str(per_host), "--host-request-interval", "0ms",
           "--max-retries", "0", corpus_md.name]  # fmt: skip
    env = {k: v for k, v in os.environ.items() if "proxy" not in k.lower()}
    _, err, status, figures = run_measured(
        cmd, cwd=corpus_md.parent, env=env, stdout=subprocess.DEVNULL
    )
    if not report.is_file():
        raise SystemExit(f"lychee wrote no report (status {status}):\n{err}")
    data = json.loads(report.read_text())
    broken = {item["url"] for key in ("error_map", "fail_map") for items in
              (data.get(key) or {}).values() for item in items}  # fmt: skip
    return {**figures, "total": data.get("total", 0), "broken": broken}


def run_reference(urls: Path, concurrency: int, per_host: int, address: str | None) -> dict:
    """The reference client (reference_client.py), measured like the citewatch worker."""
    cmd = [sys.executable, str(ROOT / "benchmarks" / "reference_client.py"), str(urls),
           "--concurrency", str(concurrency), "--per-host", str(per_host)]  # fmt: skip
    if address:
        cmd += ["--connect-address", address]
    out, err, code, figures = run_measured(cmd)
    if code != 0:
        raise SystemExit(f"reference client failed ({code}):\n{err}")
    data = json.loads(out)
    data.update(figures)
    return data


def lychee_version(lychee: str) -> str:
    out = subprocess.run([lychee, "--version"], capture_output=True, text=True).stdout.split()
    return out[1] if len(out) > 1 else "?"


def emulator_requests(port: int) -> int | None:
    """Requests served since the last call (the shared simweb's /__reset answers the counts)."""
    import urllib.request

    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # loopback, no proxy
    try:
        with opener.open(f"http://127.0.0.2:{port}/__reset", timeout=5) as answer:
            return int(json.load(answer).get("requests", 0))
    except (OSError, ValueError):
        return None  # our own simweb has no control paths


def seed_db(db: str, urls: list[str]) -> None:
    sys.path.insert(0, str(ROOT / "src"))
    from citewatch.models import Citation, Profile
    from citewatch.store import Store

    store = Store.open(db)
    run_id = store.begin_run("scan")
    citations = [Citation(url=u, raw=u, line=i + 1, column=1) for i, u in enumerate(urls)]
    store.save_profile(
        Profile(path="corpus.md", sha256=str(len(urls)), citations=citations), run_id
    )
    store.finish_run(run_id)
    store.close()


def score(result: dict[str, object], corpus: list[tuple[str, str]]) -> dict[str, int]:
    outcomes: dict[str, list[str]] = result["outcomes"]  # type: ignore[assignment]
    expected_broken = {url for url, kind in corpus if EXPECT[kind] == "broken"}
    reported = {url for url, (outcome, _) in outcomes.items() if outcome not in GOOD_OUTCOMES}
    dead = {url for url, (_, verdict) in outcomes.items() if verdict == "dead"}
    transient = {url for url, kind in corpus if EXPECT[kind] == "transient"}
    wrong = sum(1 for url, kind in corpus if outcomes.get(url, ("?",))[0] != RIGHT_OUTCOME[kind])
    return {
        "checked": len(outcomes),
        "dead": len(dead & expected_broken),
        "expected": len(expected_broken),
        "fp": len((reported | dead) - expected_broken - transient),
        "fn": len(expected_broken - dead),
        "wrong_outcomes": wrong,
    }


def peer_rows() -> list[str]:
    """The PROFILE=equal result rows from shared/bench/README.md (its "## Results" section)."""
    readme = SHARED / "README.md"
    if not readme.is_file():
        return []
    results = readme.read_text().split("## Results", 1)[-1]
    table = results.split("PROFILE=equal", 1)[-1].split("PROFILE=defaults", 1)[0]
    return [line for line in table.splitlines() if re.match(r"^\| (?!tool |---)\S", line)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--links", type=int, default=2000)
    parser.add_argument("--hosts", type=int, default=50)
    parser.add_argument("--latency-ms", type=float, default=50.0)
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--concurrency", type=int, default=100)
    parser.add_argument("--per-host", type=int, default=10)
    parser.add_argument("--mix", default="ok=80,dead=10,redirect=5,head405=5")
    parser.add_argument("--no-lychee", action="store_true", help="do not run lychee alongside")
    parser.add_argument(
        "--history",
        action="store_true",
        help="time a periodic audit's second run: the database already holds one check of every"
        " URL (made untimed just before), so the longest-first ordering has something to go on",
    )
    parser.add_argument("--worker", nargs=2, metavar=("DB", "OPTIONS"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        worker(*args.worker)
        return

    port = free_port()
    emulator, port = start_emulator(args.hosts, args.latency_ms, port)
    lychee = None if args.no_lychee or not SHARED.is_dir() else find_lychee()
    lychee_runs: list[dict] = []
    cli_runs: list[dict] = []
    reference_runs: list[dict] = []
    compileall.compile_dir(ROOT / "src" / "citewatch", quiet=1)  # as pip does on install
    try:
        with tempfile.TemporaryDirectory(prefix="bench-check-") as tmp:
            if SHARED.is_dir():
                corpus = shared_corpus(args.links, args.hosts, port, args.mix, Path(tmp) / "corpus")
                assert corpus == make_corpus(args.links, args.hosts, port, args.mix)
                connect_to: list[str] = []
                source = f"shared emulator and corpus ({SHARED})"
            else:
                corpus = make_corpus(args.links, args.hosts, port, args.mix)
                connect_to = [f":{port}:127.0.0.1:{port}"]
                source = "own simweb (../shared/bench not found: peer comparison unavailable)"
            options = {
                "concurrency": args.concurrency,
                "per_host": args.per_host,
                "canary": f"http://127.0.0.2:{port}/ok/canary",
                "connect_to": connect_to,
            }
            urls_file = Path(tmp) / "urls.txt"
            urls_file.write_text("".join(f"{url}\n" for url, _ in corpus), encoding="utf-8")
            address = "127.0.0.1" if connect_to else None
            runs = []
            for rep in range(args.reps):
                db = str(Path(tmp) / f"rep{rep}.db")
                seed_db(db, [url for url, _ in corpus])
                if args.history:
                    measure(db, options)  # the earlier run a periodic audit would have
                emulator_requests(port)
                result = measure(db, options)
                result["requests"] = emulator_requests(port)
                result.update(score(result, corpus))
                runs.append(result)
                cli_db = str(Path(tmp) / f"rep{rep}-cli.db")
                seed_db(cli_db, [url for url, _ in corpus])
                if args.history:
                    measure_cli(cli_db, options)
                emulator_requests(port)
                cli = measure_cli(cli_db, options)
                cli["requests"] = emulator_requests(port)
                cli.update(score(cli, corpus))
                cli_runs.append(cli)
                print(
                    f"rep {rep + 1}: wall {result['wall_s']:.2f} s (check {result['check_s']:.2f} s,"
                    f" startup {result['startup_s']:.2f} s), RSS {result['rss_mb']:.0f} MB,"
                    f" CPU {result['cpu_s']:.2f} s, network {result['network']},"
                    f" wrong outcomes {result['wrong_outcomes']}; CLI wall {cli['wall_s']:.2f} s,"
                    f" wrong outcomes {cli['wrong_outcomes']}",
                    file=sys.stderr,
                )
                emulator_requests(port)
                floor_run = run_reference(urls_file, args.concurrency, args.per_host, address)
                floor_run["requests"] = emulator_requests(port)
                reference_runs.append(floor_run)
                print(f"rep {rep + 1}: reference client wall {floor_run['wall_s']:.2f} s,"
                      f" CPU {floor_run['cpu_s']:.2f} s", file=sys.stderr)  # fmt: skip
                if lychee:
                    corpus_md = Path(tmp) / "corpus" / "corpus.md"
                    emulator_requests(port)
                    peer = run_lychee(lychee, corpus_md, Path(tmp) / f"lychee{rep}.json",
                                      args.concurrency, args.per_host)  # fmt: skip
                    peer["requests"] = emulator_requests(port)
                    lychee_runs.append(peer)
                    print(f"rep {rep + 1}: lychee wall {peer['wall_s']:.2f} s,"
                          f" RSS {peer['rss_mb']:.0f} MB, CPU {peer['cpu_s']:.2f} s",
                          file=sys.stderr)  # fmt: skip
    finally:
        emulator.terminate()
        emulator.wait(10)

    def median(key: str) -> float:
        return statistics.median(float(run[key]) for run in runs)  # type: ignore[arg-type]

    wall, check_s = median("wall_s"), median("check_s")
    served = last_requests = runs[-1].get("requests")
    requests = float(served) if served else args.links * 1.1 + args.hosts  # estimate otherwise
    slots = min(args.concurrency, args.hosts * args.per_host)
    floor = max(requests * args.latency_ms / 1000 / slots, 3 * args.latency_ms / 1000)
    last = runs[-1]
    print(f"\n# citewatch check — M={args.links} H={args.hosts} L={args.latency_ms:.0f} ms, "
          f"G={args.concurrency} c={args.per_host}, {args.reps} reps, medians; {source}"
          f"{'; second run over an existing history (--history)' if args.history else ''}\n")  # fmt: skip
    print("| tool | version | URLs checked | wall s | URLs/s | peak RSS MB | CPU s |"
          " dead found / expected | FP | FN | HTTP reqs |")  # fmt: skip
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    from citewatch import __version__

    cli_wall = statistics.median(run["wall_s"] for run in cli_runs)
    cli_last = cli_runs[-1]
    print(
        f"| citewatch check (CLI) | {__version__} | {cli_last['checked']} | {cli_wall:.2f} |"
        f" {args.links / cli_wall:.0f} | {statistics.median(r['rss_mb'] for r in cli_runs):.0f} |"
        f" {statistics.median(r['cpu_s'] for r in cli_runs):.1f} |"
        f" {cli_last['dead']} / {cli_last['expected']} | {cli_last['fp']} | {cli_last['fn']} |"
        f" {last_requests or f'~{requests:.0f}'} |"
    )
    print(
        f"| citewatch (bare process) | {__version__} | {last['checked']} | {wall:.2f} |"
        f" {args.links / wall:.0f} | {median('rss_mb'):.0f} | {median('cpu_s'):.1f} |"
        f" {last['dead']} / {last['expected']} | {last['fp']} | {last['fn']} |"
        f" {last_requests or f'~{requests:.0f}'} |"
    )
    print(
        f"| citewatch (run_check only) | {__version__} | {last['checked']} | {check_s:.2f} |"
        f" {args.links / check_s:.0f} | | | | | | |"
    )
    expected_broken = {url for url, kind in corpus if EXPECT[kind] == "broken"}
    wall_r = statistics.median(run["wall_s"] for run in reference_runs)
    found = sum(reference_runs[-1]["results"].get(code, 0) for code in ("404", "410"))
    print(
        f"| reference client: Python floor, judges nothing | – | {reference_runs[-1]['urls']} |"
        f" {wall_r:.2f} | {args.links / wall_r:.0f} |"
        f" {statistics.median(run['rss_mb'] for run in reference_runs):.0f} |"
        f" {statistics.median(run['cpu_s'] for run in reference_runs):.1f} |"
        f" {found} / {len(expected_broken)} | | | {reference_runs[-1]['requests'] or '?'} |"
    )
    if lychee_runs:
        transient = {url for url, kind in corpus if EXPECT[kind] == "transient"}
        wall_l = statistics.median(run["wall_s"] for run in lychee_runs)
        broken = lychee_runs[-1]["broken"]
        print(
            f"| lychee (same session) | {lychee_version(lychee)} | {lychee_runs[-1]['total']} |"
            f" {wall_l:.2f} | {args.links / wall_l:.0f} |"
            f" {statistics.median(run['rss_mb'] for run in lychee_runs):.0f} |"
            f" {statistics.median(run['cpu_s'] for run in lychee_runs):.1f} |"
            f" {len(broken & expected_broken)} / {len(expected_broken)} |"
            f" {len(broken - expected_broken - transient)} | {len(expected_broken - broken)} |"
            f" {lychee_runs[-1]['requests'] or '?'} |"
        )
        for name, ours in (("citewatch check (CLI)", cli_wall), ("run_check only", check_s)):
            verdict = "citewatch faster or equal" if ours <= wall_l else "lychee faster"
            print(f"{name} / lychee wall time: {ours / wall_l:.2f} ({verdict})")
        print(f"reference client (Python floor) / lychee wall time: {wall_r / wall_l:.2f}")
    print(f"citewatch check (CLI) / reference client wall time: {cli_wall / wall_r:.2f}")
    if not lychee_runs and not args.no_lychee:
        print("\nlychee not run: " + ("../shared/bench not found" if not SHARED.is_dir() else
              "not installed (../shared/bench/install_peers.sh, or set $LYCHEE)"))  # fmt: skip
    rows = peer_rows()
    if rows:
        print(
            "\npeers (shared/bench/README.md, PROFILE=equal, measured earlier, not in this session):"
        )
        print("| tool | version | URLs checked | wall s | x best | URLs/s | peak RSS MB | CPU s |"
              " dead found / expected | FP | FN | HTTP reqs |")  # fmt: skip
        print("\n".join(rows))
    else:
        print("\npeer comparison unavailable (../shared/bench not found)")
    right = last["wrong_outcomes"] == 0 and cli_last["wrong_outcomes"] == 0
    print(f"\nfloor ≈ {floor:.2f} s ({FLOOR_NOTE}); wall/floor = {cli_wall / floor:.2f} (CLI), "
          f"{wall / floor:.2f} (bare process), {check_s / floor:.2f} (run_check); every outcome "
          f"right: {'yes' if right else 'NO'}")  # fmt: skip


if __name__ == "__main__":
    main()
