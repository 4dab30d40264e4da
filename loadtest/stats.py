"""Percentiles and the p50/p90/p99/max summaries every report uses.

Percentiles interpolate linearly between the two nearest ranks (NumPy's default, "type 7"), so p0 is the
minimum, p100 the maximum, and a summary of one sample is that sample everywhere.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence

SUMMARY_POINTS: tuple[tuple[str, float], ...] = (("p50", 50.0), ("p90", 90.0), ("p99", 99.0))


def percentile(sorted_values: Sequence[float], q: float) -> float:
    """The ``q``-th percentile (0 ≤ q ≤ 100) of values already sorted ascending."""
    if not sorted_values:
        raise ValueError("percentile of no values")
    if not 0.0 <= q <= 100.0 or math.isnan(q):
        raise ValueError(f"percentile must be between 0 and 100, got {q}")
    rank = (len(sorted_values) - 1) * q / 100.0
    low = math.floor(rank)
    high = min(low + 1, len(sorted_values) - 1)
    fraction = rank - low
    lower, upper = sorted_values[low], sorted_values[high]
    if fraction == 0.0 or lower == upper:
        return float(lower)
    # lower + (upper - lower) * f can leave [lower, upper] by a rounding error; this form cannot.
    return float(min(max(lower * (1.0 - fraction) + upper * fraction, lower), upper))


def summarize(values: Iterable[float], digits: int = 1) -> dict[str, float | int | None]:
    """``count``, ``p50``, ``p90``, ``p99``, ``max`` and ``mean``, rounded; the statistics are None when
    there are no values (a report says "no data" rather than inventing a zero)."""
    data = sorted(values)
    if not data:
        return {"count": 0, "p50": None, "p90": None, "p99": None, "max": None, "mean": None}
    summary: dict[str, float | int | None] = {"count": len(data)}
    for name, q in SUMMARY_POINTS:
        summary[name] = round(percentile(data, q), digits)
    summary["max"] = round(data[-1], digits)
    summary["mean"] = round(math.fsum(data) / len(data), digits)
    return summary
