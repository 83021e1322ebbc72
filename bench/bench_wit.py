"""Benchmark: ``hatch-wasm-oci wit fetch`` of ``wasi:http`` (with the packages nested in it) from a
local registry vs ``hatch-wasm-oci pull`` of the same blobs; then the warm-cache fetch.

Starts a distribution registry on 127.0.0.1 (the test fixture's) seeded with the WASI 0.2.12 WIT
packages encoded by wasm-tools (from ``.cache/wasi-wit/0.2.12``, which the tests fill from npm,
or ``$HATCH_WASM_OCI_WASI_WIT``), and a plain-HTTP ``/.well-known/wasm-pkg/registry.json`` server
on 127.0.0.1 (wkg reaches 127.0.0.1 over http) whose name the wasm-pkg config maps ``wasi`` to.

* cold: ``wit fetch`` with an empty cache (discovery, tag list, pull, decode, write) vs
  ``pull`` of ``wasi/http:0.2.12`` (target <= 1.5x).
* warm: in-process ``fetch_dependencies`` with the lock and a filled cache (no network), split
  into the wasm-tools subprocesses and our own overhead (target <= 0.2 s own).

Usage: python bench/bench_wit.py [--rounds 5]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench._measure import measure, ratio_line  # noqa: E402
from hatch_wasm_oci.wit import wasm_tools as wt  # noqa: E402
from hatch_wasm_oci.wit.cache import BlobCache  # noqa: E402
from hatch_wasm_oci.wit.config import load_config  # noqa: E402
from hatch_wasm_oci.wit.fetch import Mode, fetch_dependencies  # noqa: E402
from tests.registry_fixtures import clean_env, pack_layout, plain_push, start_registry  # noqa: E402

VERSION = "0.2.12"
NAMES = ("io", "clocks", "random", "filesystem", "sockets", "cli", "http")
PROJECT_WIT = f"package bench:app@0.1.0;\nworld app {{\n  include wasi:http/proxy@{VERSION};\n}}\n"
CLI = [sys.executable, "-m", "hatch_wasm_oci"]


def wasi_wit() -> Path:
    path = Path(os.environ.get("HATCH_WASM_OCI_WASI_WIT") or ROOT / ".cache" / "wasi-wit" / VERSION)
    if not (path / "wasi-http" / "package.wit").is_file():
        raise SystemExit(f"no WASI WIT at {path}: run the tests once (they fetch it from npm)")
    return path


def encode(source: Path, name: str, out: Path) -> Path:
    work = out / f"src-{name}"
    shutil.copytree(source / f"wasi-{name}", work)
    for other in NAMES:
        if other != name:
            shutil.copytree(source / f"wasi-{other}", work / "deps" / f"wasi-{other}")
    target = out / f"{name}.wasm"
    result = wt.run("component", "wit", work, "--wasm", "-o", target)
    if result.returncode:
        raise SystemExit(result.stderr)
    return target


def serve_well_known(document: dict[str, object]) -> tuple[ThreadingHTTPServer, str]:
    body = json.dumps(document).encode()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, f"127.0.0.1:{server.server_address[1]}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-wit-") as scratch_name:
        scratch = Path(scratch_name)
        registry = start_registry(scratch / "registry")
        try:
            source = wasi_wit()
            for name in NAMES:
                packed = pack_layout(
                    encode(source, name, scratch), scratch / f"l-{name}", (VERSION,)
                )
                ref = f"{registry.address}/webassembly/wasi/{name}"
                pushed = plain_push(packed.layout, ref, clean_env(scratch / "home"))
                assert pushed.returncode == 0, pushed.stderr
            server, name = serve_well_known(
                {"oci": {"registry": registry.address, "namespacePrefix": "webassembly/"}}
            )
            config = scratch / "config.toml"
            config.write_text(
                f'[namespace_registries]\nwasi = "{name}"\n\n[registry."{name}".oci]\n'
                'protocol = "http"\n'
            )
            env = clean_env(scratch / "home", WKG_CONFIG_FILE=str(config))
            project = scratch / "project"
            (project / "wit").mkdir(parents=True)
            (project / "wit" / "world.wit").write_text(PROJECT_WIT)
            os.environ.update(env)

            def cold() -> list[str]:
                cache = scratch / f"cache-{time.monotonic_ns()}"
                (project / "wkg.lock").unlink(missing_ok=True)
                return ["env", f"HATCH_WASM_OCI_CACHE={cache}", *CLI, "wit", "fetch", str(project)]

            ours = min(
                (measure(cold(), repeat=1) for _ in range(args.rounds)), key=lambda r: r.seconds
            )
            out = scratch / "pulled"
            pull_ref = f"{registry.address}/webassembly/wasi/http:{VERSION}"
            peer_cmd = [
                "sh",
                "-c",
                f"rm -rf {out} && {' '.join(CLI)} pull {pull_ref} -o {out} --plain-http",
            ]
            peer = measure(peer_cmd, repeat=args.rounds)
            print(ratio_line("cold: wit fetch wasi:http", ours, peer, "pull", 1.5))

            # warm: the lock and a filled cache, in process (no interpreter start-up counted)
            cache_root = scratch / "warm-cache"
            subprocess.run(
                [*CLI, "wit", "fetch", str(project)],
                env={**env, "HATCH_WASM_OCI_CACHE": str(cache_root)},
                check=True,
                capture_output=True,
            )
            spent: list[float] = []
            original = wt.run

            def timed(*a: str | os.PathLike[str]) -> subprocess.CompletedProcess[str]:
                start = time.perf_counter()
                try:
                    return original(*a)
                finally:
                    spent.append(time.perf_counter() - start)

            wt.run = timed
            best = None
            for _ in range(args.rounds):
                spent.clear()
                start = time.perf_counter()
                fetch_dependencies(
                    project / "wit",
                    config=load_config(env),
                    cache=BlobCache(cache_root / "wit"),
                    mode=Mode.LOCKED,
                    environ=env,
                    log=lambda _: None,
                )
                total = time.perf_counter() - start
                if best is None or total < best[0]:
                    best = (total, sum(spent), len(spent))
            wt.run = original
            assert best is not None
            total, tools, calls = best
            own = total - tools
            verdict = "ok" if own <= 0.2 else "MISSED"
            print(
                f"warm: locked fetch from the cache  total {total * 1000:7.1f} ms  "
                f"wasm-tools ({calls} runs) {tools * 1000:7.1f} ms  own {own * 1000:6.1f} ms "
                f"(target <= 200 ms: {verdict})"
            )
            server.shutdown()
        finally:
            registry.stop()


if __name__ == "__main__":
    main()
