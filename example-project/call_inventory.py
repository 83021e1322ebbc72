"""Call the built component's `example:inventory/stock` exports with `hatch_wasm_oci.load()`.

Usage: python call_inventory.py TARGET
TARGET is the built OCI layout (dist/wasm-oci/<name>-<version>/), a .wasm, or a registry
reference. Prints one JSON object with the results of `summarize`, `find` and `reserve`.
"""

import json
import sys

import hatch_wasm_oci

ITEMS = [
    {"sku": "apple", "name": "Apple", "quantity": 12, "unit_price_cents": 40},
    {"sku": "pear", "name": "Pear", "quantity": 3, "unit_price_cents": 55},
    {"sku": "plum", "name": "Plum", "quantity": 0, "unit_price_cents": 90},
]


def main(target: str) -> None:
    stock = hatch_wasm_oci.load(target).stock  # records are dicts, results Ok/Err
    reserved, too_many = stock.reserve(ITEMS[0], 5), stock.reserve(ITEMS[1], amount=10)
    results = {
        "summarize": stock.summarize(ITEMS, 5),
        "find": stock.find(ITEMS, "pear"),
        "find_missing": stock.find(ITEMS, "kiwi"),
        "reserve": {type(reserved).__name__.lower(): reserved.value},
        "reserve_too_many": {type(too_many).__name__.lower(): too_many.value},
    }
    print(json.dumps(results, indent=2, sort_keys=True))


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    main(sys.argv[1])
