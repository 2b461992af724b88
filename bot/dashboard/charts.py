"""Server-rendered SVG charts (pygal), inlined in pages: no JavaScript, nothing from a CDN.

pygal embeds a small ``<script>`` with its tooltip config; it is removed here (the pages run no
script at all, and their Content-Security-Policy forbids it). Each chart is an ``<svg
role="img">`` with an ``aria-label`` sentence; the pages put the same numbers in a table beside
it, so screen-reader users and people who cannot read the colours get every value.
"""

from __future__ import annotations

import sys
import xml.etree.ElementTree as ET
from collections.abc import Mapping, Sequence

import pygal
from markupsafe import Markup
from pygal.style import Style

# pygal appends a legacy import hook (for its world-map plugins, unused here) to sys.meta_path;
# it would sit in every later import of the process and warn on each miss. Take it out again.
sys.meta_path[:] = [f for f in sys.meta_path if type(f).__name__ != "PluginImportFixer"]

_STYLE = Style(
    background="transparent",
    plot_background="transparent",
    foreground="#1f2933",
    foreground_strong="#1f2933",
    foreground_subtle="#52606d",
    colors=("#1f5fa8", "#b03a2e", "#2f7d32", "#7b4fa0"),
    font_family="system-ui, sans-serif",
    label_font_size=14,
    major_label_font_size=14,
    value_font_size=14,
    title_font_size=16,
)


def _svg(chart: pygal.graph.graph.Graph, label: str, *, sparkline: bool = False) -> Markup:
    tree = chart.render_tree()
    root = tree.getroot() if hasattr(tree, "getroot") else tree
    for parent in list(root.iter()):
        for child in list(parent):
            # Scripts go, and so do pygal's comments (its name and URLs, not part of the chart).
            if not isinstance(child.tag, str) or child.tag.endswith("script"):
                parent.remove(child)
    root.set("role", "img")
    root.set("aria-label", label)
    root.set("focusable", "false")
    if sparkline:
        root.set("class", (root.get("class") or "") + " sparkline")
    # ElementTree escapes every text and attribute, so a label can never become markup.
    return Markup(ET.tostring(root, encoding="unicode"))  # noqa: S704


def sparkline(ratings: Sequence[int], *, low: int = 0, high: int = 10) -> Markup:
    if not ratings:
        return Markup("")  # the page says "–"; pygal would draw a large "No data"
    chart = pygal.Line(
        style=_STYLE, js=[], show_legend=False, disable_xml_declaration=True, width=120, height=32,
        range=(low, high), show_dots=True, dots_size=3, stroke_style={"width": 3},
    )  # fmt: skip
    chart.add("rating", list(ratings))
    chart.config.show_x_labels = chart.config.show_y_labels = False
    chart.config.margin = 2
    chart.config.spacing = 0
    label = "ratings " + " → ".join(str(r) for r in ratings)
    return _svg(chart, label, sparkline=True)


def line(
    title: str, labels: Sequence[str], series: Mapping[str, Sequence[float | None]], *, low: float, high: float,
    label: str,
) -> Markup:  # fmt: skip
    """A line chart with values printed on the points and the series named at the bottom when
    there is more than one (no legend hunt for a single series)."""
    chart = pygal.Line(
        style=_STYLE, js=[], disable_xml_declaration=True, width=720, height=320, range=(low, high),
        show_legend=len(series) > 1, legend_at_bottom=True, print_values=True, dots_size=5,
        title=title, x_label_rotation=0, truncate_label=-1,
    )  # fmt: skip
    chart.x_labels = list(labels)
    for name, values in series.items():
        chart.add(name, list(values))
    return _svg(chart, label)


def bars(title: str, counts: dict[int, int], *, low: int, high: int, label: str) -> Markup:
    chart = pygal.Bar(
        style=_STYLE, js=[], disable_xml_declaration=True, width=720, height=280, show_legend=False,
        print_values=True, title=title,
    )  # fmt: skip
    chart.x_labels = [str(v) for v in range(low, high + 1)]
    top = max(counts.values(), default=0)
    # Whole people: integer ticks (pygal would otherwise draw 0.1 steps for small counts).
    chart.y_labels = list(range(0, top + 1, max(1, top // 5)))
    chart.add("people", [counts.get(v, 0) for v in range(low, high + 1)])
    return _svg(chart, label)
