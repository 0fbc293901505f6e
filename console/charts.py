"""Charts as inline SVG drawn on the server: no JavaScript, nothing fetched.

Geometry is integer arithmetic on the integer values (tokens, nanos), so a
chart of money never passes through a float either. Hovering a bar shows its
exact value (an SVG ``<title>``); the tables beside each chart carry the numbers.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from django.utils.html import escape
from django.utils.safestring import SafeString, mark_safe
from django.utils.translation import pgettext

from console.formatting import thousands

PALETTE = ("#3b6fd8", "#e07b39", "#2f9e6e", "#c94f7c", "#7a5cc4", "#b3a12b", "#3aa0b8")
OTHER = "other"
OTHER_COLOR = "#9aa3b2"

WIDTH, HEIGHT = 960, 230
# LEFT fits an axis label such as "0.000000075 USD" (tiny embedding amounts).
LEFT, RIGHT, TOP, BOTTOM = 128, 8, 10, 26


@dataclass(frozen=True)
class Series:
    name: str
    values: list[int]

    @property
    def total(self) -> int:
        return sum(self.values)


def nice_ceiling(value: int) -> int:
    """The smallest 1, 2 or 5 times a power of ten that is at least ``value``."""
    magnitude = 1
    while True:
        for step in (1, 2, 5):
            if step * magnitude >= value:
                return step * magnitude
        magnitude *= 10


def colors_for(names: list[str]) -> dict[str, str]:
    """One color per name, in order; everything past the palette is "other"."""
    colors = {name: PALETTE[i] for i, name in enumerate(names[: len(PALETTE)])}
    colors[OTHER] = OTHER_COLOR
    return colors


def fold(series: list[Series], colors: dict[str, str]) -> list[Series]:
    """The series that have a color of their own, and one "other" summing the rest."""
    kept = [s for s in series if s.name in colors and s.name != OTHER]
    rest = [s for s in series if s.name not in colors or s.name == OTHER]
    if rest:
        kept.append(
            Series(OTHER, [sum(column) for column in zip(*(s.values for s in rest), strict=True)])
        )
    return kept


def shown_name(name: str) -> str:
    """A series as the reader sees it: the folded rest in their language."""
    return pgettext("chart", "other") if name == OTHER else name


def stacked_bars(
    *,
    labels: list[str],
    series: list[Series],
    colors: dict[str, str],
    title: str,
    format_value: Callable[[int], str] = thousands,
) -> SafeString:
    """One bar per label, each split by series; empty when every value is zero."""
    series = fold(series, colors)
    totals = [sum(column) for column in zip(*(s.values for s in series), strict=True)]
    if not totals or max(totals) <= 0:
        return mark_safe("")  # noqa: S308 (a constant)
    top = nice_ceiling(max(totals))
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM
    base = TOP + plot_h
    slot = plot_w // len(labels)
    bar_w = max(1, slot * 3 // 4)

    parts = [
        f'<svg class="chart" viewBox="0 0 {WIDTH} {HEIGHT}" width="100%" role="img" '
        f'aria-label="{escape(title)}" font-size="11" font-family="system-ui, sans-serif">',
        f"<title>{escape(title)}</title>",
    ]
    for step in range(5):
        tick = top * step // 4
        y = base - tick * plot_h // top
        parts.append(f'<line x1="{LEFT}" x2="{WIDTH - RIGHT}" y1="{y}" y2="{y}" stroke="#e3e6eb"/>')
        parts.append(
            f'<text x="{LEFT - 6}" y="{y + 4}" text-anchor="end" fill="#6b7385">'
            f"{escape(format_value(tick))}</text>"
        )
    every = -(-len(labels) // 10)  # at most ten labels under the axis
    for i, label in enumerate(labels):
        x = LEFT + i * slot + (slot - bar_w) // 2
        below = 0
        for s in series:
            value = s.values[i]
            if value <= 0:
                continue
            y_low = base - below * plot_h // top
            y_high = base - (below + value) * plot_h // top
            below += value
            parts.append(
                f'<rect x="{x}" y="{y_high}" width="{bar_w}" height="{max(1, y_low - y_high)}" '
                f'fill="{colors.get(s.name, OTHER_COLOR)}"><title>{escape(label)} · '
                f"{escape(shown_name(s.name))}: {escape(format_value(value))}</title></rect>"
            )
        if i % every == 0:
            parts.append(
                f'<text x="{x + bar_w // 2}" y="{HEIGHT - 8}" text-anchor="middle" '
                f'fill="#6b7385">{escape(label)}</text>'
            )
    parts.append("</svg>")
    return mark_safe("".join(parts))  # noqa: S308 (every text above is escaped)
