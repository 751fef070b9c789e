"""Counters, gauges and histograms with labels, rendered in Prometheus' text format 0.0.4.

Small on purpose: the handful of families the deck exports need no client library.
Everything runs on the event loop's thread, so no locking.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from bisect import bisect_left
from collections.abc import Iterable, Iterator
from enum import StrEnum

Labels = tuple[tuple[str, str], ...]

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


class Kind(StrEnum):
    COUNTER = "counter"
    GAUGE = "gauge"
    HISTOGRAM = "histogram"


class Family(ABC):
    """One metric name with its help text; one value per label set."""

    kind: Kind

    def __init__(self, name: str, help: str, labels: tuple[str, ...] = ()) -> None:
        self.name = name
        self.help = help
        self.label_names = labels

    def _key(self, labels: dict[str, str]) -> Labels:
        if set(labels) != set(self.label_names):
            raise ValueError(f"{self.name} takes labels {self.label_names}, got {tuple(labels)}")
        return tuple((name, str(labels[name])) for name in self.label_names)

    @abstractmethod
    def samples(self) -> Iterator[tuple[str, Labels, float]]:
        """(sample name, labels, value) for each exported line."""

    def render(self) -> Iterator[str]:
        yield f"# HELP {self.name} {_escape_help(self.help)}"
        yield f"# TYPE {self.name} {self.kind.value}"
        for name, labels, value in self.samples():
            yield f"{name}{_labels(labels)} {_number(value)}"


class Counter(Family):
    kind = Kind.COUNTER

    def __init__(self, name: str, help: str, labels: tuple[str, ...] = ()) -> None:
        super().__init__(name, help, labels)
        self._values: dict[Labels, float] = {}

    def inc(self, amount: float = 1.0, **labels: str) -> None:
        key = self._key(labels)
        self._values[key] = self._values.get(key, 0.0) + amount

    def value(self, **labels: str) -> float:
        return self._values.get(self._key(labels), 0.0)

    def samples(self) -> Iterator[tuple[str, Labels, float]]:
        for labels, value in sorted(self._values.items()):
            yield self.name, labels, value


class Gauge(Family):
    kind = Kind.GAUGE

    def __init__(self, name: str, help: str, labels: tuple[str, ...] = ()) -> None:
        super().__init__(name, help, labels)
        self._values: dict[Labels, float] = {}

    def set(self, value: float, **labels: str) -> None:
        self._values[self._key(labels)] = value

    def samples(self) -> Iterator[tuple[str, Labels, float]]:
        for labels, value in sorted(self._values.items()):
            yield self.name, labels, value


class Histogram(Family):
    kind = Kind.HISTOGRAM

    def __init__(
        self, name: str, help: str, buckets: Iterable[float], labels: tuple[str, ...] = ()
    ) -> None:
        super().__init__(name, help, labels)
        self.bounds = tuple(sorted(buckets))
        self._counts: dict[Labels, list[int]] = {}  # per bucket, not cumulative; last is +Inf
        self._sums: dict[Labels, float] = {}

    def observe(self, value: float, **labels: str) -> None:
        key = self._key(labels)
        counts = self._counts.setdefault(key, [0] * (len(self.bounds) + 1))
        counts[bisect_left(self.bounds, value)] += 1  # `le` is inclusive
        self._sums[key] = self._sums.get(key, 0.0) + value

    def samples(self) -> Iterator[tuple[str, Labels, float]]:
        for labels, counts in sorted(self._counts.items()):
            running = 0
            for bound, count in zip((*self.bounds, math.inf), counts, strict=True):
                running += count
                yield f"{self.name}_bucket", (*labels, ("le", _number(bound))), running
            yield f"{self.name}_sum", labels, self._sums[labels]
            yield f"{self.name}_count", labels, running


def render(families: Iterable[Family]) -> str:
    return "".join(line + "\n" for family in families for line in family.render())


def _labels(labels: Labels) -> str:
    if not labels:
        return ""
    return "{" + ",".join(f'{name}="{_escape_value(value)}"' for name, value in labels) + "}"


def _escape_value(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _escape_help(text: str) -> str:
    return text.replace("\\", "\\\\").replace("\n", "\\n")


def _number(value: float) -> str:
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    if math.isnan(value):
        return "NaN"
    return str(int(value)) if float(value).is_integer() else repr(float(value))
