"""The report's charts as inline SVG, drawn server-side with matplotlib.

Why matplotlib SVG: the report is one self-contained HTML file that must look the same in
a browser, a mail client that strips scripts, and a PDF, and must fetch nothing. SVG drawn on
the server needs no script at all (the page carries a Content-Security-Policy that forbids
scripts and every fetch), text is drawn as glyph outlines so no font has to be present on the
reader's machine, and five charts weigh about 100 kB. A JavaScript library (Chart.js:
210 kB minified) would make the file twice as heavy and show nothing without scripts.

Only `matplotlib.figure.Figure` is used (no pyplot): no global backend or figure registry,
so rendering is safe inside Dagster and other long-running processes. Output is
deterministic: fixed hash salt per chart, no date in the metadata.
"""

from __future__ import annotations

import io
import re
import threading
from collections.abc import Callable, Sequence

import matplotlib
from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter, MaxNLocator

from cleargro_pipeline.reports import fmt
from cleargro_pipeline.reports.metrics import ReportData

CURRENT = "#1d5b8f"
PREVIOUS = "#8c99a6"
LAST_YEAR = "#d9912b"
UP = "#2e7d4f"
DOWN = "#c0392b"
NEW = "#1d5b8f"
RETURNING = "#5fa8a0"
INK = "#1f2933"
MUTED = "#616e7c"
GRID = "#e4e7eb"
WIDTH_IN = 7.2  # the page's content width at 96 dpi, roughly

RC = {
    "svg.fonttype": "path",  # glyph outlines: looks the same without any font installed
    "font.family": "DejaVu Sans",  # ships with matplotlib
    "font.size": 9,
    "text.color": INK,
    "axes.edgecolor": GRID,
    "axes.labelcolor": MUTED,
    "axes.titlesize": 10,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "axes.grid": True,
    "grid.color": GRID,
    "grid.linewidth": 0.8,
    "xtick.color": MUTED,
    "ytick.color": MUTED,
    "xtick.major.size": 0,
    "ytick.major.size": 0,
    "legend.frameon": False,
    "legend.fontsize": 8.5,
    "lines.linewidth": 2,
}

_STRIP = [re.compile(p, re.S) for p in (r"<\?xml.*?\?>\s*", r"<!DOCTYPE.*?>\s*", r"<!--.*?-->\s*",
                                         r"<metadata>.*?</metadata>\s*")]


def _svg(fig: Figure, name: str, label: str) -> str:
    buffer = io.StringIO()
    fig.savefig(buffer, format="svg", metadata={"Date": None, "Creator": None},
                bbox_inches="tight", pad_inches=0.05)
    text = buffer.getvalue()
    for pattern in _STRIP:
        text = pattern.sub("", text)
    text = _compact(text, name)
    # Scales with the page: drop the fixed size and keep the viewBox.
    text = re.sub(r'<svg([^>]*?) width="[^"]*" height="[^"]*"',
                  lambda m: f'<svg{m[1]} class="chart-svg" data-chart="{name}" role="img" '
                            f'aria-label="{_attr(label)}"', text, count=1)
    return text.strip()


_REF = re.compile(r'(url\(#|href="#)([^)"]+)')


def _compact(text: str, name: str) -> str:
    """Smaller and safe to inline several times in one page: ids nobody refers to are dropped,
    the others get the chart's name as prefix (unique in the page), coordinates keep two
    decimals (a hundredth of a pixel; scales below 1 keep theirs), and line breaks between tags go."""
    referenced = {m[2] for m in _REF.finditer(text)}
    text = re.sub(r' id="([^"]+)"',
                  lambda m: f' id="{name}-{m[1]}"' if m[1] in referenced else "", text)
    text = _REF.sub(lambda m: f"{m[1]}{name}-{m[2]}", text)
    # Coordinates (>= 1) to 0.01; smaller numbers, such as glyph scales, keep their precision.
    text = re.sub(r"(?<![\d.])([1-9]\d*\.\d\d)\d+", r"\1", text)
    text = re.sub(r">\s+<", "><", text)
    return re.sub(r"\s*\n\s*", " ", text)


def _attr(text: str) -> str:
    return (text.replace("&", "&amp;").replace('"', "&quot;").replace("<", "&lt;")
            .replace(">", "&gt;"))


_RC_LOCK = threading.Lock()  # rc_context changes matplotlib's process-wide settings


def _draw(name: str, label: str, height: float, draw: Callable[[Figure], None],
          width: float = WIDTH_IN) -> str:
    with _RC_LOCK, matplotlib.rc_context({**RC, "svg.hashsalt": f"cleargro-{name}"}):
        fig = Figure(figsize=(width, height))
        draw(fig)
        return _svg(fig, name, label)


def _money_axis(currency: str) -> FuncFormatter:
    return FuncFormatter(lambda v, _: fmt.money_compact(v, currency))


def trend(data: ReportData) -> str | None:
    frame = data.trend
    if frame.height < 2:
        return None
    unit = "weeks" if data.period.kind == "week" else "months"
    label = f"Revenue and ad spend over the last {frame.height} {unit}"

    def draw(fig: Figure) -> None:
        ax = fig.subplots()
        x = list(range(frame.height))
        revenue = frame["revenue"].to_list()
        ax.plot(x, revenue, color=CURRENT, marker="o", markersize=4, label="Revenue")
        if frame["ad_spend"].null_count() < frame.height:
            ax.plot(x, frame["ad_spend"].to_list(), color=LAST_YEAR, marker="o", markersize=3,
                    label="Ad spend")
        partial = frame["partial"].to_list()
        for i, is_partial in enumerate(partial):
            if is_partial:
                ax.plot([i], [revenue[i]], marker="o", markersize=7, markerfacecolor="white",
                        markeredgecolor=CURRENT, linestyle="none")
        ax.set_xticks(x, _period_labels(data.period.kind, frame["start"].to_list(), partial))
        ax.set_ylim(bottom=0)
        ax.yaxis.set_major_formatter(_money_axis(data.currency))
        ax.yaxis.set_major_locator(MaxNLocator(5))
        ax.grid(axis="x", visible=False)
        ax.legend(loc="lower left", bbox_to_anchor=(0, 1.0), ncols=2)
        if any(partial):
            ax.annotate("* part of the period", xy=(1, -0.16), xycoords="axes fraction",
                        ha="right", fontsize=7.5, color=MUTED)

    return _draw("trend", label, 2.6, draw)


def _period_labels(kind: str, starts: list, partial: list[bool]) -> list[str]:
    """`W47` / `Nov`, with the year under the first label and where a year begins."""
    out = []
    for i, (start, is_partial) in enumerate(zip(starts, partial, strict=True)):
        year, number, _ = start.isocalendar()
        if kind == "week":
            text, new_year = f"W{number:02d}", number == 1
        else:
            text, new_year, year = start.strftime("%b"), start.month == 1, start.year
        text += "*" if is_partial else ""
        out.append(f"{text}\n{year}" if i == 0 or new_year else text)
    return out


def daily(data: ReportData) -> str | None:
    frame = data.daily
    current = frame.filter(frame["window"] == "current")
    if current.height < 2:
        return None
    label = "Revenue per day against the previous period and the same period last year"
    styles = {"current": (CURRENT, "-", 2.4), "previous": (PREVIOUS, "-", 1.6),
              "last_year": (LAST_YEAR, "--", 1.6)}

    def draw(fig: Figure) -> None:
        ax = fig.subplots()
        for name in ("last_year", "previous", "current"):
            part = frame.filter(frame["window"] == name)
            if part.height == 0:
                continue
            color, style, width = styles[name]
            window = data.windows[name]
            ax.plot(part["day_index"].to_list(), part["revenue"].to_list(), color=color,
                    linestyle=style, linewidth=width, marker="o" if part.height <= 10 else None,
                    markersize=3.5, label=f"{fmt.window_name(name)} ({window.period.label})")
        days = current["day"].to_list()
        if data.period.kind == "week":
            ticks = list(range(len(days)))
            ax.set_xticks(ticks, [d.strftime("%a %d") for d in days])
        else:
            ticks = [i for i, d in enumerate(days) if d.day in (1, 5, 10, 15, 20, 25, 30)]
            ax.set_xticks(ticks, [days[i].strftime("%d %b") for i in ticks])
        ax.set_ylim(bottom=0)
        ax.yaxis.set_major_formatter(_money_axis(data.currency))
        ax.yaxis.set_major_locator(MaxNLocator(5))
        ax.grid(axis="x", visible=False)
        handles, labels = ax.get_legend_handles_labels()
        ax.legend(handles[::-1], labels[::-1], loc="lower left", bbox_to_anchor=(0, 1.0), ncols=3)

    return _draw("daily", label, 2.6, draw)


COMPARE_CAP = 1.0  # bars are cut at +-100 %; the label keeps the true figure


def comparison(data: ReportData) -> str | None:
    rows = [k for k in data.kpis if k.key != "guest_orders"
            and (k.change("previous") is not None or k.change("last_year") is not None)]
    if not rows:
        return None
    label = "Change of each figure against the previous period and the same period last year"

    def draw(fig: Figure) -> None:
        ax = fig.subplots()
        n = len(rows)
        y = list(range(n))[::-1]
        height = 0.38
        low, high = 0.0, 0.05
        for offset, name, color in ((height / 2, "previous", PREVIOUS),
                                    (-height / 2, "last_year", LAST_YEAR)):
            values = [k.change(name) for k in rows]
            shown = [max(-COMPARE_CAP, min(COMPARE_CAP, v)) if v is not None else 0 for v in values]
            low, high = min([low] + shown), max([high] + shown)
            bars = ax.barh([yy + offset for yy in y], shown, height, color=color,
                           label=f"vs {fmt.window_name(name).lower()}")
            for bar, value in zip(bars, values, strict=True):
                if value is None:
                    continue
                inside = bar.get_width()
                ax.annotate(fmt.percent_change(value), xy=(inside, bar.get_y() + height / 2),
                            xytext=(3 if inside >= 0 else -3, 0), textcoords="offset points",
                            ha="left" if inside >= 0 else "right", va="center", fontsize=7.5,
                            color=INK)
        ax.set_yticks(y, [k.label for k in rows])
        room = (high - low) * 0.22  # for the labels at the bar ends
        ax.set_xlim(low - room if low < 0 else -room * 0.3, high + room)
        ax.axvline(0, color=MUTED, linewidth=0.8)
        ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:+.0%}" if v else "0"))
        ax.xaxis.set_major_locator(MaxNLocator(6))
        ax.grid(axis="y", visible=False)
        ax.legend(loc="lower left", ncols=2, bbox_to_anchor=(0, 1.0))

    return _draw("comparison", label, 0.42 * len(rows) + 0.8, draw)


def shoppers(data: ReportData) -> str | None:
    new, returning = data.kpi("new_shoppers"), data.kpi("returning_shoppers")
    names = [n for n in ("current", "previous", "last_year") if new.values.get(n) is not None]
    if not names:
        return None
    label = "New and returning shoppers in this period and the comparison periods"

    def draw(fig: Figure) -> None:
        ax = fig.subplots()
        labels = [f"{fmt.window_name(n)}\n{data.windows[n].period.label}" for n in names]
        first = [new.values[n] or 0 for n in names]
        second = [returning.values[n] or 0 for n in names]
        x = list(range(len(names)))
        ax.bar(x, first, 0.55, color=NEW, label="New")
        ax.bar(x, second, 0.55, bottom=first, color=RETURNING, label="Returning")
        for i, (a, b) in enumerate(zip(first, second, strict=True)):
            if a:
                ax.annotate(fmt.count(a), xy=(i, a / 2), ha="center", va="center",
                            color="white", fontsize=8)
            if b:
                ax.annotate(fmt.count(b), xy=(i, a + b / 2), ha="center", va="center",
                            color="white", fontsize=8)
        ax.set_xticks(x, labels)
        ax.yaxis.set_major_locator(MaxNLocator(5, integer=True))
        ax.grid(axis="x", visible=False)
        ax.legend(loc="upper left", bbox_to_anchor=(1.0, 1.0))

    return _draw("shoppers", label, 2.4, draw, width=5.4)


def movers(data: ReportData) -> str | None:
    rows = data.movers_up.to_dicts() + data.movers_down.to_dicts()[::-1]
    if not rows:
        return None
    label = "Variants whose revenue changed most against the previous period"

    def draw(fig: Figure) -> None:
        ax = fig.subplots()
        y = list(range(len(rows)))[::-1]
        changes = [r["change"] for r in rows]
        bars = ax.barh(y, changes, 0.6, color=[UP if c > 0 else DOWN for c in changes])
        for bar, change in zip(bars, changes, strict=True):
            ax.annotate(fmt.money_change(change, data.currency),
                        xy=(change, bar.get_y() + 0.3), xytext=(3 if change > 0 else -3, 0),
                        textcoords="offset points", ha="left" if change > 0 else "right",
                        va="center", fontsize=7.5)
        ax.set_yticks(y, [_truncate(r["display_name"]) for r in rows])
        low, high = min(changes + [0]), max(changes + [0])
        room = (high - low) * 0.2
        ax.set_xlim(low - room, high + room)
        ax.axvline(0, color=MUTED, linewidth=0.8)
        ax.xaxis.set_major_formatter(_money_axis(data.currency))
        ax.xaxis.set_major_locator(MaxNLocator(6))
        ax.grid(axis="y", visible=False)

    return _draw("movers", label, 0.3 * len(rows) + 0.7, draw)


def _truncate(text: str, limit: int = 38) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "\u2026"


CHARTS: Sequence[tuple[str, Callable[[ReportData], str | None]]] = (
    ("trend", trend), ("daily", daily), ("comparison", comparison), ("shoppers", shoppers),
    ("movers", movers))


def render_all(data: ReportData) -> dict[str, str]:
    """Chart name -> inline SVG, for the charts the data can fill."""
    out = {}
    for name, draw in CHARTS:
        svg = draw(data)
        if svg:
            out[name] = svg
    return out
