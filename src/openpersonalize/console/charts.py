"""Charts as inline SVG, drawn on the server: nothing to load, nothing to build, and the numbers
are in the page (each bar carries its value in a <title>, which browsers show on hover and
tests and screen readers can read)."""

from __future__ import annotations

from html import escape


def bars(values: list[tuple[str, float]], *, width: int = 640, height: int = 180, label: str = "") -> str:
    """A bar chart of ``(label, value)`` pairs."""
    if not values:
        return '<p class="empty">No data.</p>'
    top = max((v for _, v in values), default=0.0) or 1.0
    gap = 2
    bar = max(2.0, (width - gap * len(values)) / len(values))
    parts = [f'<svg class="chart" role="img" aria-label="{escape(label)}" viewBox="0 0 {width} {height + 20}" '
             f'preserveAspectRatio="none" data-points="{len(values)}">']
    for k, (name, value) in enumerate(values):
        h = (height - 4) * (value / top)
        x = k * (bar + gap)
        parts.append(f'<rect x="{x:.1f}" y="{height - h:.1f}" width="{bar:.1f}" height="{h:.1f}">'
                     f'<title>{escape(str(name))}: {value:,.4g}</title></rect>')
    first, last = escape(str(values[0][0])), escape(str(values[-1][0]))
    parts.append(f'<text x="0" y="{height + 15}">{first}</text>')
    if len(values) > 1:
        parts.append(f'<text x="{width}" y="{height + 15}" text-anchor="end">{last}</text>')
    parts.append("</svg>")
    return "".join(parts)


def grouped(series: dict[str, list[tuple[str, float]]], *, width: int = 640, height: int = 200, label: str = "") -> str:
    """Bars side by side: for each category (the x labels of the first series), one bar per
    series (solution versions side by side per metric)."""
    names = list(series)
    if not names or not series[names[0]]:
        return '<p class="empty">No data.</p>'
    categories = [c for c, _ in series[names[0]]]
    top = max((v for s in series.values() for _, v in s), default=0.0) or 1.0
    slot = width / len(categories)
    bar = max(2.0, slot / (len(names) + 1))
    parts = [f'<svg class="chart" role="img" aria-label="{escape(label)}" viewBox="0 0 {width} {height + 34}" '
             f'data-points="{sum(len(s) for s in series.values())}">']
    for c, category in enumerate(categories):
        for k, name in enumerate(names):
            value = dict(series[name]).get(category, 0.0)
            h = (height - 4) * (value / top)
            x = c * slot + k * bar
            parts.append(f'<rect class="s{k % 6}" x="{x:.1f}" y="{height - h:.1f}" width="{bar * 0.9:.1f}" '
                         f'height="{h:.1f}"><title>{escape(name)} {escape(category)}: {value:.4f}</title></rect>')
        parts.append(f'<text x="{c * slot:.1f}" y="{height + 14}" font-size="10">{escape(category)}</text>')
    parts.append("</svg>")
    return "".join(parts)
