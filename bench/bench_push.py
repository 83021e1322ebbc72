"""Benchmark: ``hatch-wasm-oci push`` vs ``skopeo copy`` of the same ~256 MiB Wasm OCI layout,
over plain HTTP and over TLS.

Starts local distribution registries on 127.0.0.1 (the test fixture's; the TLS one with a test
CA that both tools are told to trust), builds a real component
(wasm-tools) grown with a random custom section, packs it with ``layout.pack``, then pushes it
alternately with both tools into fresh repositories of the same registry and prints wall time,
child peak RSS and CPU (``/usr/bin/time``), the fixed cost of a tiny push (the unpadded component)
and a re-push of unchanged content through a byte-counting proxy.

The package is byte-compiled first (``compileall``), as a pip-installed wheel is: with
PYTHONDONTWRITEBYTECODE set and no ``__pycache__``, every run would compile hatch_wasm_oci from
source (~12 ms); ``--no-bytecode`` measures that case.

Usage: python bench/bench_push.py [--size-mib 256] [--rounds 3] [--no-bytecode] [--json]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from hatch_wasm_oci.oci.layout import pack  # noqa: E402
from tests.fault_proxy import FaultProxy  # noqa: E402
from tests.registry_fixtures import (  # noqa: E402
    clean_env,
    make_ca_and_server_cert,
    padded_component,
    start_registry,
)

WIT = "package bench:tiny;\nworld tiny { export answer: func() -> u32; }\n"
WAT = '(module (func (export "answer") (result i32) i32.const 42))\n'


def wasm_tools(*args: str | Path) -> None:
    exe = Path(sys.executable).with_name("wasm-tools")
    subprocess.run([str(exe), *map(str, args)], check=True, capture_output=True)


def build_component(directory: Path, size: int) -> Path:
    (directory / "tiny.wit").write_text(WIT)
    (directory / "core.wat").write_text(WAT)
    wasm_tools(
        "component",
        "embed",
        directory / "tiny.wit",
        directory / "core.wat",
        "-o",
        directory / "embedded.wasm",
    )
    wasm_tools("component", "new", directory / "embedded.wasm", "-o", directory / "tiny.wasm")
    big = padded_component(directory / "tiny.wasm", directory / "big.wasm", size)
    wasm_tools("validate", big)
    return big


def measured(args: list[str], env: dict[str, str], tmp: Path) -> tuple[float, int, float]:
    """Run ``args`` under /usr/bin/time: (wall s, peak RSS KiB, user+sys CPU s) of that command.

    ``os.wait4`` on a child of this process would report at least this process's own peak RSS
    (Linux carries the pre-exec high-water mark into the child's ``ru_maxrss``); the small
    ``time`` binary keeps that floor at about 2 MiB.
    """
    rss_file = tmp / "rss.txt"
    # Flush the previous run's dirty pages first: otherwise whichever tool runs second in a
    # round pays for the first one's 256 MiB of write-back.
    os.sync()
    time.sleep(0.2)
    started = time.perf_counter()
    proc = subprocess.run(
        ["/usr/bin/time", "-f", "%M %U %S", "-o", str(rss_file), *args],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    wall = time.perf_counter() - started
    if proc.returncode != 0:
        raise SystemExit(f"{args[0]} failed ({proc.returncode}): {proc.stdout}{proc.stderr}")
    rss, user, system = rss_file.read_text().split()[-3:]
    return wall, int(rss), float(user) + float(system)


def transport_args(tool: str, ca: Path | None) -> list[str]:
    """How each tool is told about the registry's transport (plain HTTP, or TLS with ``ca``)."""
    if ca is None:
        return ["--plain-http"] if tool == "ours" else ["--dest-tls-verify=false"]
    if tool == "ours":
        return ["--ca-file", str(ca)]
    certs = ca.parent / "skopeo-certs"
    certs.mkdir(exist_ok=True)
    (certs / "ca.crt").write_bytes(ca.read_bytes())
    return [f"--dest-cert-dir={certs}"]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size-mib", type=int, default=256)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--json", action="store_true", help="print one JSON object only")
    parser.add_argument(
        "--no-bytecode", action="store_true", help="do not byte-compile hatch_wasm_oci first"
    )
    args = parser.parse_args()
    if not args.no_bytecode:
        package = ROOT / "hatch_wasm_oci"
        subprocess.run([sys.executable, "-m", "compileall", "-q", str(package)], check=True)

    with tempfile.TemporaryDirectory(prefix="bench-push-") as tmp_name:
        tmp = Path(tmp_name)
        wasm = build_component(tmp, args.size_mib << 20)
        layout = pack(wasm, tmp / "layout", tags=("bench",)).layout
        tiny_layout = pack(tmp / "tiny.wasm", tmp / "tiny-layout", tags=("bench",)).layout
        size = wasm.stat().st_size
        env = clean_env(tmp / "home")
        ours_cmd = [sys.executable, "-m", "hatch_wasm_oci", "push", str(layout)]
        ours: list[tuple[float, int]] = []
        cpu: dict[str, list[float]] = {"ours": [], "skopeo": []}
        theirs: list[tuple[float, int]] = []
        tiny: dict[str, list[float]] = {"ours": [], "skopeo": []}
        tls_ours: list[float] = []
        tls_theirs: list[float] = []
        ca, cert, key = make_ca_and_server_cert(tmp / "pki")
        for round_no in range(args.rounds):
            # TLS: a fresh TLS registry per round, both tools in turn, wall time only.
            server = start_registry(tmp / f"registry-tls-{round_no}", tls=(cert, key))
            try:
                for tool in ("ours", "skopeo") if round_no % 2 == 0 else ("skopeo", "ours"):
                    repo = f"{server.address}/bench/{tool}-{uuid.uuid4().hex[:8]}"
                    if tool == "ours":
                        run_env = dict(env, XDG_CACHE_HOME=str(tmp / f"cache-tls-{round_no}"))
                        cmd = [*ours_cmd, f"{repo}:bench", *transport_args("ours", ca)]
                        tls_ours.append(measured(cmd, run_env, tmp)[0])
                    else:
                        cmd = ["skopeo", "copy", "--quiet", f"oci:{layout}:bench"]
                        cmd += [f"docker://{repo}:bench", *transport_args("skopeo", ca)]
                        tls_theirs.append(measured(cmd, env, tmp)[0])
            finally:
                server.stop()
        for round_no in range(args.rounds):
            # A fresh registry per round: skopeo's blob-info cache (for root it lives in
            # /var/lib/containers/cache) remembers host:port/repo locations and would mount
            # instead of upload; a new port has no history. Both tools push to it in turn.
            server = start_registry(tmp / f"registry-{round_no}")
            try:
                for tool in ("ours", "skopeo") if round_no % 2 == 0 else ("skopeo", "ours"):
                    repo = f"{server.address}/bench/{tool}-{uuid.uuid4().hex[:8]}"
                    if tool == "ours":
                        summary = tmp / "summary.json"
                        # a fresh blob-location cache: no cross-repository mounts, a real upload
                        run_env = dict(env, XDG_CACHE_HOME=str(tmp / f"cache-{round_no}"))
                        wall, rss, cpu_s = measured(
                            [*ours_cmd, f"{repo}:bench", "--plain-http", "--summary", str(summary)],
                            run_env,
                            tmp,
                        )
                        stats = json.loads(summary.read_text())["stats"]
                        assert stats["blobsUploaded"] == 2 and stats["blobsMounted"] == 0, stats
                        assert stats["blobBytesSent"] >= size, stats
                        ours.append((wall, rss))
                        cpu["ours"].append(cpu_s)
                        ours_repo = repo.split("/", 1)[1]
                    else:
                        wall, rss, cpu_s = measured(
                            [
                                "skopeo",
                                "copy",
                                "--quiet",
                                f"oci:{layout}:bench",
                                f"docker://{repo}:bench",
                                "--dest-tls-verify=false",
                            ],
                            env,
                            tmp,
                        )
                        theirs.append((wall, rss))
                        cpu["skopeo"].append(cpu_s)
                for tool in ("ours", "skopeo") * 3:
                    repo = f"{server.address}/tiny/{tool}-{uuid.uuid4().hex[:8]}"
                    if tool == "ours":
                        run_env = dict(env, XDG_CACHE_HOME=str(tmp / f"cache-tiny-{repo[-8:]}"))
                        cmd = [*ours_cmd[:-1], str(tiny_layout), f"{repo}:bench", "--plain-http"]
                    else:
                        run_env = env
                        cmd = ["skopeo", "copy", "--quiet", f"oci:{tiny_layout}:bench"]
                        cmd += [f"docker://{repo}:bench", "--dest-tls-verify=false"]
                    tiny[tool].append(measured(cmd, run_env, tmp)[0])
                if round_no == args.rounds - 1:
                    with FaultProxy(server.address, lifetime=600) as proxy:
                        wall_re, rss_re, _ = measured(
                            [
                                *ours_cmd,
                                f"{proxy.address}/{ours_repo}:bench",
                                "--plain-http",
                                "--summary",
                                str(tmp / "repush.json"),
                            ],
                            env,
                            tmp,
                        )
                        repush_bytes = proxy.upload_bytes
                        repush_requests = [f"{s.method} {s.status}" for s in proxy.seen]
                    repush_stats = json.loads((tmp / "repush.json").read_text())["stats"]
            finally:
                server.stop()

    ours_wall = statistics.median(w for w, _ in ours)
    skopeo_wall = statistics.median(w for w, _ in theirs)
    tls_ratio = statistics.median(tls_ours) / statistics.median(tls_theirs)
    result = {
        "tls_ours_wall_s": [round(w, 3) for w in tls_ours],
        "tls_skopeo_wall_s": [round(w, 3) for w in tls_theirs],
        "tls_wall_ratio_ours_over_skopeo": round(tls_ratio, 3),
        "component_bytes": size,
        "bytecode_compiled": not args.no_bytecode,
        "rounds": args.rounds,
        "ours_wall_s": [round(w, 3) for w, _ in ours],
        "skopeo_wall_s": [round(w, 3) for w, _ in theirs],
        "ours_median_s": round(ours_wall, 3),
        "skopeo_median_s": round(skopeo_wall, 3),
        "wall_ratio_ours_over_skopeo": round(ours_wall / skopeo_wall, 3),
        "ours_peak_rss_mib": round(max(r for _, r in ours) / 1024, 1),
        "skopeo_peak_rss_mib": round(max(r for _, r in theirs) / 1024, 1),
        "ours_rss_mib": [round(r / 1024, 1) for _, r in ours],
        "skopeo_rss_mib": [round(r / 1024, 1) for _, r in theirs],
        "ours_cpu_s_median": round(statistics.median(cpu["ours"]), 3),
        "skopeo_cpu_s_median": round(statistics.median(cpu["skopeo"]), 3),
        "tiny_push_median_s": {k: round(statistics.median(v), 3) for k, v in tiny.items()},
        "repush_wall_s": round(wall_re, 3),
        "repush_peak_rss_mib": round(rss_re / 1024, 1),
        "repush_blob_bytes_seen_by_proxy": repush_bytes,
        "repush_blob_bytes_counted_by_client": repush_stats["blobBytesSent"],
        "repush_requests": repush_requests,
    }
    if args.json:
        print(json.dumps(result))
        return 0
    mib = size / 2**20
    compiled = "no bytecode" if args.no_bytecode else "byte-compiled"
    print(
        f"component: {mib:.1f} MiB, {args.rounds} rounds, registry 127.0.0.1 (distribution 2.8), "
        f"hatch_wasm_oci {compiled}"
    )
    print(
        f"hatch-wasm-oci push: median {ours_wall:.2f} s  {result['ours_wall_s']}  "
        f"peak RSS {result['ours_peak_rss_mib']} MiB {result['ours_rss_mib']}"
    )
    print(
        f"skopeo copy:         median {skopeo_wall:.2f} s  {result['skopeo_wall_s']}  "
        f"peak RSS {result['skopeo_peak_rss_mib']} MiB {result['skopeo_rss_mib']}"
    )
    print(
        f"client CPU (user+sys) median: ours {result['ours_cpu_s_median']} s, "
        f"skopeo {result['skopeo_cpu_s_median']} s"
    )
    print(
        f"wall-time ratio (ours / skopeo): {result['wall_ratio_ours_over_skopeo']:.2f}x "
        "(target <= 1.0x)"
    )
    print(
        f"TLS: ours {result['tls_ours_wall_s']} s, skopeo {result['tls_skopeo_wall_s']} s, "
        f"wall-time ratio {tls_ratio:.2f}x (target <= 1.0x)"
    )
    print(
        f"tiny push (fixed cost) median: ours {result['tiny_push_median_s']['ours']} s, "
        f"skopeo {result['tiny_push_median_s']['skopeo']} s"
    )
    print(
        f"re-push unchanged: {wall_re:.2f} s, blob bytes sent {repush_bytes} (proxy) / "
        f"{repush_stats['blobBytesSent']} (client), requests: {', '.join(repush_requests)}"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
