"""Small server-drawn SVG charts: no script, readable by screen readers
through their title and a table beside them."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from html import escape


@dataclass(frozen=True, slots=True)
class Series:
    label: str
    values: tuple[int, ...]
    css_class: str


def bar_chart(title: str, labels: Sequence[str], series: Sequence[Series],
              width: int = 640, height: int = 180) -> str:
    """Grouped bars, one group per label; scales to its container width."""
    groups = max(1, len(labels))
    top = max([1, *(v for s in series for v in s.values)])
    pad_left, pad_bottom = 34, 22
    inner_w, inner_h = width - pad_left - 4, height - pad_bottom - 8
    slot = inner_w / groups
    bar = max(1.0, (slot - 4) / max(1, len(series)))
    parts = [f'<svg class="chart" viewBox="0 0 {width} {height}" role="img" '
             f'aria-label="{escape(title)}" preserveAspectRatio="none">',
             f"<title>{escape(title)}</title>",
             f'<line class="axis" x1="{pad_left}" y1="{8 + inner_h}" x2="{width - 4}" '
             f'y2="{8 + inner_h}"/>',
             f'<text class="tick" x="{pad_left - 4}" y="14" text-anchor="end">{top}</text>',
             f'<text class="tick" x="{pad_left - 4}" y="{8 + inner_h}" '
             'text-anchor="end">0</text>']
    for g, label in enumerate(labels):
        for k, s in enumerate(series):
            value = s.values[g] if g < len(s.values) else 0
            h = inner_h * value / top
            x = pad_left + g * slot + 2 + k * bar
            parts.append(f'<rect class="{s.css_class}" x="{x:.1f}" y="{8 + inner_h - h:.1f}" '
                         f'width="{bar:.1f}" height="{h:.1f}"><title>{escape(label)}: '
                         f"{value} {escape(s.label)}</title></rect>")
        if groups <= 16 or g % max(1, groups // 8) == 0:
            parts.append(f'<text class="tick" x="{pad_left + g * slot + slot / 2:.1f}" '
                         f'y="{height - 6}" text-anchor="middle">{escape(label)}</text>')
    parts.append("</svg>")
    return "".join(parts)
