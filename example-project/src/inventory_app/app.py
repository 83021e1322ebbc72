"""Implementation of the exported `stock` interface of the `inventory` world."""

from __future__ import annotations

from componentize_py_types import Err
from wit_world import exports
from wit_world.exports.stock import Item, Summary


class Stock(exports.Stock):
    """componentize-py instantiates this class to serve `example:inventory/stock`."""

    def summarize(self, items: list[Item], threshold: int) -> Summary:
        return Summary(
            distinct_items=len(items),
            total_quantity=sum(item.quantity for item in items),
            total_value_cents=sum(item.quantity * item.unit_price_cents for item in items),
            low_stock=[item.sku for item in items if item.quantity < threshold],
        )

    def find(self, items: list[Item], sku: str) -> Item | None:
        for item in items:
            if item.sku == sku:
                return item
        return None

    def reserve(self, item: Item, amount: int) -> Item:
        if amount == 0:
            raise Err("amount must be positive")
        if amount > item.quantity:
            raise Err(f"only {item.quantity} of {item.sku} in stock, {amount} requested")
        return Item(
            sku=item.sku,
            name=item.name,
            quantity=item.quantity - amount,
            unit_price_cents=item.unit_price_cents,
        )
