"""The `example:inventory/stock` interface implemented in Python, compiled by componentize-py."""
