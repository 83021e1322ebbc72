"""Benchmark ``hatch-wasm-oci run --invoke`` of the example component against bare wasmtime-py.

Measured in one run, each the best of ``--repeat`` (peak RSS: the largest):

- peer: a Python script that compiles the component with wasmtime-py (no cache), instantiates
  it with WASI and calls ``summarize`` with hand-built records (the glue ``call_inventory.py``
  used to be);
- cold: ``hatch-wasm-oci run LAYOUT --invoke 'summarize(...)'`` with an empty compiled cache
  (target: <= 1.1x the peer);
- cached: the same with the compiled cache filled by the cold run (target: <= 10% of cold).

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
    (manifest,) = {d.digest: d for d in opened.manifests()}.values()
    return opened.blob_path(opened.layer(manifest).digest)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("layout", nargs="?", type=Path, default=LAYOUT)
    parser.add_argument("--repeat", type=int, default=2)
    args = parser.parse_args()
    if not (args.layout / "index.json").is_file():
        raise SystemExit(f"{args.layout}: no layout; run ./scripts/build-example.sh first")
    cli = [sys.executable, "-m", "hatch_wasm_oci", "run", str(args.layout), "--invoke", CALL]
    with tempfile.TemporaryDirectory(prefix="bench-run-") as scratch:
        peer_script = Path(scratch) / "peer.py"
        peer_script.write_text(PEER)
        cache = Path(scratch) / "cache"
        env = {**os.environ, "HATCH_WASM_OCI_CACHE": str(cache)}
        check = subprocess.run(cli, capture_output=True, text=True, env=env, check=False)
        if check.stdout.strip() != EXPECTED:
            raise SystemExit(f"unexpected output: {check.stdout!r} {check.stderr}")
        shutil.rmtree(cache)

        peer = measure([sys.executable, str(peer_script), str(layer_of(args.layout))], args.repeat)
        quoted = " ".join(shlex.quote(a) for a in cli)
        cold = measure(
            [f"rm -rf {cache} && HATCH_WASM_OCI_CACHE={cache} {quoted}"], args.repeat, shell=True
        )
        cached = measure([f"HATCH_WASM_OCI_CACHE={cache} {quoted}"], args.repeat, shell=True)
    print(ratio_line("run --invoke, cold compile", cold, peer, "wasmtime-py", 1.1))
    print(ratio_line("run --invoke, compiled cache", cached, cold, "cold run", 0.10))
    print(_line("peer (wasmtime-py, no cache)", peer))


def _line(name: str, run: Run) -> str:
    return f"{name:<34} {run.seconds * 1000:9.1f} ms  peak RSS {run.peak_rss_mib:6.1f} MiB"


if __name__ == "__main__":
    main()
