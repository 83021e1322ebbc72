"""Run the built component in wasmtime-py and call its exported `example:inventory/stock` functions.

Usage: python call_inventory.py PATH
PATH is the built OCI layout (dist/wasm-oci/<name>-<version>/) or a .wasm component file.
Prints one JSON object with the results of `summarize`, `find` and `reserve`.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import wasmtime
import wasmtime.component as wc

INTERFACE = "example:inventory/stock@0.1.0"


def component_file(path: Path) -> Path:
    """The .wasm file itself, or the application/wasm layer of a layout's first manifest."""
    if path.is_file():
        return path
    index = json.loads((path / "index.json").read_text())
    algorithm, digest = index["manifests"][0]["digest"].split(":")
    manifest = json.loads((path / "blobs" / algorithm / digest).read_text())
    layer_algorithm, layer_digest = manifest["layers"][0]["digest"].split(":")
    return path / "blobs" / layer_algorithm / layer_digest


def item(sku: str, name: str, quantity: int, unit_price_cents: int) -> wc.Record:
    """A WIT `item` record as wasmtime-py expects it: attributes named like the WIT fields."""
    record = wc.Record()
    fields = {"sku": sku, "name": name, "quantity": quantity, "unit-price-cents": unit_price_cents}
    for field, value in fields.items():
        setattr(record, field, value)
    return record


def as_plain(value: Any) -> Any:
    """Records to dicts (recursively), so results print as JSON."""
    if isinstance(value, wc.Record):
        return {key: as_plain(field) for key, field in vars(value).items()}
    if isinstance(value, list):
        return [as_plain(element) for element in value]
    return value


def as_result(value: Any) -> dict[str, Any]:
    """A `result<item, string>`: wasmtime-py returns the record for ok and the string for err."""
    if isinstance(value, wc.Variant):
        return {value.tag: as_plain(value.payload)}
    return {"err": value} if isinstance(value, str) else {"ok": as_plain(value)}


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print(__doc__, file=sys.stderr)
        return 2
    config = wasmtime.Config()
    config.cache = True
    engine = wasmtime.Engine(config)
    component = wc.Component.from_file(engine, str(component_file(Path(argv[0]))))
    linker = wc.Linker(engine)
    linker.add_wasip2()
    store = wasmtime.Store(engine)
    store.set_wasi(wasmtime.WasiConfig())
    instance = linker.instantiate(store, component)
    interface = instance.get_export_index(store, INTERFACE)
    if interface is None:
        print(f"the component does not export {INTERFACE}", file=sys.stderr)
        return 1

    def call(name: str, *args: Any) -> Any:
        index = instance.get_export_index(store, name, interface)
        func = instance.get_func(store, index)
        result = func(store, *args)
        func.post_return(store)
        return result

    items = [
        item("apple", "Apple", 12, 40),
        item("pear", "Pear", 3, 55),
        item("plum", "Plum", 0, 90),
    ]
    results: dict[str, Any] = {
        "summarize": as_plain(call("summarize", items, 5)),
        "find": as_plain(call("find", items, "pear")),
        "find_missing": as_plain(call("find", items, "kiwi")),
        "reserve": as_result(call("reserve", items[0], 5)),
        "reserve_too_many": as_result(call("reserve", items[1], 10)),
    }
    print(json.dumps(results, indent=2, sort_keys=True))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
