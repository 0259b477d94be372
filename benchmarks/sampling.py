"""Picking a share of a data set for a benchmark (the benchmarks' own helpers, imported from their folder)."""

from __future__ import annotations

import numpy as np


def evenly(items: list, count: int) -> list:
    """``count`` items spread evenly over ``items`` (all of them if fewer)."""
    if len(items) <= count:
        return items
    return [items[i] for i in np.linspace(0, len(items) - 1, count).round().astype(int)]
