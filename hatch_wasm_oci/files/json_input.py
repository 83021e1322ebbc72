"""Hostile JSON, parsed with bounds: a size cap and a nesting-depth cap, one error type.

Every JSON document this package reads (manifests, indexes, configs, ``index.json``,
``oci-layout``, token replies, error bodies, the docker config, caches) comes from somewhere
it does not control; ``json.loads`` alone turns ``[[[…]]]`` into a ``RecursionError`` and reads
whatever size it is given.
"""

from __future__ import annotations

import json
from typing import Any


class JsonInputError(ValueError):
    """A JSON input is too large, too deep, not JSON, or not the expected shape."""


def parse_json(data: bytes | str, what: str, limit: int) -> Any:
    """``data`` parsed as JSON; JsonInputError naming ``what`` if it is over ``limit`` bytes,
    nested deeper than the decoder's recursion guard allows, or not valid UTF-8 JSON."""
    raw = data.encode("utf-8", "surrogatepass") if isinstance(data, str) else data
    if len(raw) > limit:
        raise JsonInputError(f"{what} is larger than {limit} bytes")
    try:
        return json.loads(raw)
    except RecursionError:
        raise JsonInputError(f"{what} is nested too deeply") from None
    except (ValueError, UnicodeDecodeError):
        raise JsonInputError(f"{what} is not valid JSON") from None


def parse_json_object(data: bytes | str, what: str, limit: int) -> dict[str, Any]:
    """``parse_json`` for a document that must be a JSON object."""
    parsed = parse_json(data, what, limit)
    if not isinstance(parsed, dict):
        raise JsonInputError(f"{what} is not a JSON object")
    return parsed
