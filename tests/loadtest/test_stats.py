"""Percentile math: properties that any correct percentile has, checked on arbitrary data."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from loadtest.stats import percentile, summarize

values = st.lists(st.floats(min_value=-1e9, max_value=1e9, allow_nan=False), min_size=1, max_size=300)
quantiles = st.floats(min_value=0, max_value=100)


@given(values, quantiles)
def test_a_percentile_lies_between_the_minimum_and_the_maximum(data: list[float], q: float) -> None:
    ordered = sorted(data)
    assert ordered[0] <= percentile(ordered, q) <= ordered[-1]


@given(values, quantiles, quantiles)
def test_percentiles_do_not_decrease_with_q(data: list[float], q1: float, q2: float) -> None:
    ordered = sorted(data)
    low, high = sorted((q1, q2))
    assert percentile(ordered, low) <= percentile(ordered, high)


@given(values)
def test_p0_is_the_minimum_and_p100_the_maximum(data: list[float]) -> None:
    ordered = sorted(data)
    assert percentile(ordered, 0) == ordered[0]
    assert percentile(ordered, 100) == ordered[-1]


@given(values, quantiles)
def test_agrees_with_numpys_linear_interpolation(data: list[float], q: float) -> None:
    expected = float(np.percentile(np.array(data), q, method="linear"))
    assert math.isclose(percentile(sorted(data), q), expected, rel_tol=1e-9, abs_tol=1e-6)


@given(st.floats(min_value=-1e6, max_value=1e6, allow_nan=False), st.integers(1, 50), quantiles)
def test_constant_data_has_that_constant_everywhere(value: float, n: int, q: float) -> None:
    assert percentile([value] * n, q) == value


def test_known_values() -> None:
    data = [float(v) for v in range(1, 101)]  # 1..100
    assert percentile(data, 50) == pytest.approx(50.5)
    assert percentile(data, 90) == pytest.approx(90.1)
    assert percentile(data, 99) == pytest.approx(99.01)


def test_refuses_no_data_and_out_of_range_quantiles() -> None:
    with pytest.raises(ValueError):
        percentile([], 50)
    for q in (-1, 100.5, math.nan):
        with pytest.raises(ValueError):
            percentile([1.0], q)


@given(values)
def test_a_summary_is_ordered_and_counts_everything(data: list[float]) -> None:
    summary = summarize(data, digits=6)
    assert summary["count"] == len(data)
    p50, p90, p99, top = (summary[k] for k in ("p50", "p90", "p99", "max"))
    assert isinstance(p50, float) and isinstance(p90, float) and isinstance(p99, float)
    assert p50 <= p90 <= p99 <= top == round(max(data), 6)


def test_a_summary_of_nothing_says_so_rather_than_zero() -> None:
    assert summarize([]) == {"count": 0, "p50": None, "p90": None, "p99": None, "max": None, "mean": None}
