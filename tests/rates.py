"""Counting sends against a rate limit."""

from __future__ import annotations

import bisect


def max_in_one_second(times: list[float]) -> int:
    """The most timestamps in any window [t, t + 1): the busiest window starts at a timestamp."""
    times = sorted(times)
    return max(bisect.bisect_left(times, t + 1.0) - i for i, t in enumerate(times))
