"""The interval chart, drawn as inline SVG on the server: no chart library, nothing to load, works
offline and without JavaScript, and looks the same in the report file and the live dashboard.

One chart is one cohort and metric over event time: the estimated effect (oriented, positive =
worse) as a line, its always-valid interval as a band, the margin as a dashed red line and zero as a
grey one, and the verdict state of each time as a strip of colour along the bottom.
"""

from __future__ import annotations

from collections.abc import Sequence
from html import escape

from rollguard.report.records import MetricPoint
from rollguard.report.words import fmt_clock, fmt_effect

WIDTH, HEIGHT = 320, 120
_LEFT, _RIGHT, _TOP, _BOTTOM = 46, 6, 8, 26
STATE_COLOURS = {"regressed": "#d7263d", "non_inferior": "#2e933c", "insufficient": "#9aa5b1"}


def _n(x: float) -> str:
    """A coordinate: whole pixels are enough at this size and keep a page of many charts small."""
    return str(round(x))


def interval_chart(
    times: Sequence[float],
    points: Sequence[MetricPoint | None],
    *,
    margin: float,
    relative: bool,
    metric: str,
    title: str,
) -> str:
    """An SVG element (a string) of one metric's effect and interval over ``times``."""
    pairs = [(t, p) for t, p in zip(times, points, strict=True) if p is not None]
    if not pairs:
        return ""
    t0, t1 = pairs[0][0], pairs[-1][0]
    span_t = max(t1 - t0, 1.0)
    # The y range: zero, the margin, and the intervals of the later three quarters of the time (the
    # first intervals are very wide and would flatten everything; they are clipped at the edge).
    late = [p for t, p in pairs if t >= t0 + span_t / 4] or [p for _, p in pairs]
    values = [0.0, margin, margin * 1.6]
    for _, eff, lo, hi in late:
        values += [v for v in (eff, lo, hi) if v is not None]
    y_lo, y_hi = min(values), max(values)
    pad = (y_hi - y_lo) * 0.08 or 1.0
    y_lo, y_hi = y_lo - pad, y_hi + pad
    plot_w, plot_h = WIDTH - _LEFT - _RIGHT, HEIGHT - _TOP - _BOTTOM

    def x(t: float) -> float:
        return _LEFT + (t - t0) / span_t * plot_w

    def y(v: float) -> float:
        v = min(max(v, y_lo), y_hi)
        return _TOP + (y_hi - v) / (y_hi - y_lo) * plot_h

    parts = [
        f'<svg class="chart" viewBox="0 0 {WIDTH} {HEIGHT}" width="{WIDTH}" height="{HEIGHT}" '
        f'role="img" aria-label="{escape(title)}"><title>{escape(title)}</title>',
        f'<rect x="{_LEFT}" y="{_TOP}" width="{plot_w}" height="{plot_h}" class="plot"/>',
    ]
    # The band: one polygon per run of times with an interval.
    run: list[tuple[float, float, float]] = []
    runs: list[list[tuple[float, float, float]]] = []
    for t, (_, _, lo, hi) in pairs:
        if lo is None or hi is None:
            if run:
                runs.append(run)
            run = []
            continue
        run.append((t, lo, hi))
    if run:
        runs.append(run)
    for r in runs:
        if len(r) == 1:
            t, lo, hi = r[0]
            parts.append(
                f'<line x1="{_n(x(t))}" x2="{_n(x(t))}" y1="{_n(y(lo))}" y2="{_n(y(hi))}" class="band-line"/>'
            )
            continue
        upper = " ".join(f"{_n(x(t))},{_n(y(hi))}" for t, _, hi in r)
        lower = " ".join(f"{_n(x(t))},{_n(y(lo))}" for t, lo, _ in reversed(r))
        parts.append(f'<polygon points="{upper} {lower}" class="band"/>')
    parts.append(
        f'<line x1="{_LEFT}" x2="{WIDTH - _RIGHT}" y1="{_n(y(0.0))}" y2="{_n(y(0.0))}" class="zero"/>'
    )
    parts.append(
        f'<line x1="{_LEFT}" x2="{WIDTH - _RIGHT}" y1="{_n(y(margin))}" y2="{_n(y(margin))}" class="margin"/>'
    )
    line = " ".join(f"{_n(x(t))},{_n(y(eff))}" for t, (_, eff, _, _) in pairs if eff is not None)
    if line:
        parts.append(f'<polyline points="{line}" class="effect"/>')
    # The state strip: each run of one state, from its first time to the next run's.
    strip_y = HEIGHT - _BOTTOM + 3
    starts = [i for i in range(len(pairs)) if i == 0 or pairs[i][1][0] != pairs[i - 1][1][0]]
    for k, i in enumerate(starts):
        end = pairs[starts[k + 1]][0] if k + 1 < len(starts) else t1
        w = max(x(end) - x(pairs[i][0]), 2.0)
        colour = STATE_COLOURS.get(pairs[i][1][0], STATE_COLOURS["insufficient"])
        parts.append(
            f'<rect x="{_n(x(pairs[i][0]))}" y="{strip_y}" width="{_n(w)}" height="5" fill="{colour}"/>'
        )
    # Labels: the margin and zero on the left, the first and last time below.
    for v, cls in ((margin, "lbl-margin"), (0.0, "lbl")):
        if cls == "lbl" and abs(y(0.0) - y(margin)) < 9:
            continue  # too close to the margin's label to be read
        text = fmt_effect(v, relative=relative, metric=metric) if v else "0"
        parts.append(
            f'<text x="{_LEFT - 3}" y="{_n(y(v) + 3)}" class="{cls}" text-anchor="end">{escape(text)}</text>'
        )
    parts.append(f'<text x="{_LEFT}" y="{HEIGHT - 4}" class="lbl">{fmt_clock(t0)}</text>')
    parts.append(
        f'<text x="{WIDTH - _RIGHT}" y="{HEIGHT - 4}" class="lbl" text-anchor="end">{fmt_clock(t1)}</text>'
    )
    parts.append("</svg>")
    return "".join(parts)
