"""The cost chart: stacked bars per day and agent, drawn as SVG on the server (no JS).

An SVG scales to its box, its labels with it: the 760-unit chart on a phone's 330 px
would print 11-unit labels at under 5 px. So it is drawn at two widths, `WIDE` and
`NARROW`, and the stylesheet shows the one that fits; day labels thin out so that they
never overlap at either.
"""

from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import dataclass
from datetime import date, timedelta

from markupsafe import Markup, escape

from storage.costs import DaySpend

# Colour-blind friendly (Okabe-Ito), then greys for the rest.
PALETTE = ("#0072B2", "#E69F00", "#009E73", "#CC79A7", "#56B4E9", "#D55E00", "#F0E442")
OTHER = "#999999"
WIDE, NARROW = 760, 340
HEIGHT = 260
LEFT, RIGHT, TOP, BOTTOM = 64, 12, 12, 40
FONT = 11
DAY_LABEL_UNITS = 40  # "12-05" at FONT, with a gap


@dataclass(frozen=True, slots=True)
class Legend:
    agent: str
    colour: str
    cost: float


def colours(rows: list[DaySpend]) -> dict[str, str]:
    """Agents by total cost, most expensive first, each with its colour."""
    totals: dict[str, float] = defaultdict(float)
    for row in rows:
        totals[row.agent] += row.cost
    ranked = sorted(totals, key=lambda agent: (-totals[agent], agent))
    return {agent: PALETTE[i] if i < len(PALETTE) else OTHER for i, agent in enumerate(ranked)}


def legend(rows: list[DaySpend]) -> list[Legend]:
    totals: dict[str, float] = defaultdict(float)
    for row in rows:
        totals[row.agent] += row.cost
    return [Legend(agent, colour, totals[agent]) for agent, colour in colours(rows).items()]


def cost_chart(rows: list[DaySpend], *, first: date, days: int, width: int = WIDE) -> Markup:
    """An SVG of money per day (x) stacked by agent; every day in range gets a slot."""
    palette = colours(rows)
    by_day: dict[date, list[DaySpend]] = defaultdict(list)
    for row in rows:
        by_day[row.day].append(row)
    top = _nice_max(max((sum(r.cost for r in v) for v in by_day.values()), default=0.0))
    slot = (width - LEFT - RIGHT) / days
    every = max(math.ceil(DAY_LABEL_UNITS / slot), 1)  # day labels that do not overlap
    parts = [_axis(top, width) if top else _empty(width)]
    for i in range(days):
        day = first + timedelta(days=i)
        x = LEFT + i * slot
        parts.append(
            _stack(sorted(by_day.get(day, []), key=lambda r: r.agent), palette, x, slot, top)
        )
        if (days - 1 - i) % every == 0:  # counted from today, which is always labelled
            parts.append(_label(x + slot / 2, HEIGHT - BOTTOM + 16, f"{day:%m-%d}"))
    body = "".join(parts)
    return Markup(  # noqa: S704  (labels are escaped where they are made)
        f'<svg class="chart chart-{width}" viewBox="0 0 {width} {HEIGHT}" role="img" '
        f'aria-label="Cost per day and agent" xmlns="http://www.w3.org/2000/svg">{body}</svg>'
    )


def _stack(rows: list[DaySpend], palette: dict[str, str], x: float, slot: float, top: float) -> str:
    plot = HEIGHT - TOP - BOTTOM
    y = float(HEIGHT - BOTTOM)
    parts = []
    for row in rows:
        h = plot * row.cost / top if top else 0.0
        if h <= 0:
            continue
        y -= h
        tip = escape(f"{row.day:%Y-%m-%d} {row.agent}: ${row.cost:.4f}, {row.runs} run(s)")
        parts.append(
            f'<rect x="{x + slot * 0.15:.1f}" y="{y:.1f}" width="{slot * 0.7:.1f}" '
            f'height="{h:.1f}" fill="{palette.get(row.agent, OTHER)}"><title>{tip}</title></rect>'
        )
    return "".join(parts)


def _axis(top: float, width: int) -> str:
    plot = HEIGHT - TOP - BOTTOM
    parts = []
    for step in range(5):
        value = top * step / 4
        y = HEIGHT - BOTTOM - plot * step / 4
        parts.append(
            f'<line x1="{LEFT}" x2="{width - RIGHT}" y1="{y:.1f}" y2="{y:.1f}" '
            f'stroke="#dddddd" stroke-width="1"/>'
        )
        parts.append(_label(LEFT - 6, y + 4, _money(value), anchor="end"))
    return "".join(parts)


def _empty(width: int) -> str:
    baseline = HEIGHT - BOTTOM
    return (
        f'<line x1="{LEFT}" x2="{width - RIGHT}" y1="{baseline}" y2="{baseline}" '
        f'stroke="#dddddd" stroke-width="1"/>'
        + _label(LEFT - 6, baseline + 4, "$0", anchor="end")
        + _label((LEFT + width - RIGHT) / 2, (TOP + baseline) / 2, "No spend in this span")
    )


def _label(x: float, y: float, text: str, anchor: str = "middle") -> str:
    return (
        f'<text x="{x:.1f}" y="{y:.1f}" font-size="{FONT}" fill="#555555" '
        f'text-anchor="{anchor}">{escape(text)}</text>'
    )


def _nice_max(value: float) -> float:
    """A round top for the axis, at or above the tallest bar."""
    if value <= 0:
        return 0.0
    for scale in (0.0001, 0.001, 0.01, 0.1, 1, 10, 100, 1000, 10_000, 100_000):
        for step in (1, 2, 5):
            if value <= step * scale:
                return step * scale
    return value


def _money(value: float) -> str:
    if value == 0:
        return "$0"
    return f"${value:.4f}".rstrip("0") if value < 1 else f"${value:,.0f}"
