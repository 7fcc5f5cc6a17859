"""The report's pictures, drawn with matplotlib and returned as CSP-safe inline SVG (``svg.py``).

- ``tax_chart``: per task, each checkpoint's paired gain over its base with the bootstrap interval;
  one panel per task (each on its own scale), alignment tasks first; colours tell alignment gains,
  alignment losses, capability gains and capability losses (the tax) apart, and a faded bar is a
  change that is not significant after Holm's correction.
- ``win_rate_chart``: each model's win rate against the baseline, raw and length-controlled, with
  intervals, around the 0.5 line.
- ``breakdown_chart``: one metric by group (CrowS-Pairs bias types, Winogender genders, toxic and
  non-toxic prompts) for every checkpoint, with +-1.96 standard errors.
"""

from __future__ import annotations

import math

from .svg import configure_matplotlib, figure_svg

COLOURS = {
    ("alignment", True): "#1b9e77",  # alignment gain
    ("alignment", False): "#d95f02",  # alignment loss
    ("capability", True): "#4c78a8",  # capability gain
    ("capability", False): "#c0392b",  # capability loss: the alignment tax
}
LEGEND = {
    ("alignment", True): "alignment gain", ("alignment", False): "alignment loss",
    ("capability", True): "capability gain", ("capability", False): "capability loss (tax)",
}
DIRECTION_WORDS = {"higher": "higher is better", "lower": "lower is better", "": "no direction"}
CHECKPOINT_COLOURS = ["#4c78a8", "#f58518", "#54a24b", "#b279a2", "#e45756", "#72b7b2", "#9d755d", "#bab0ac"]
Z95 = 1.959964


def _fmt(value: float) -> str:
    size = abs(value)
    if size >= 100:
        return f"{value:+.1f}"
    return f"{value:+.2f}" if size >= 1 else f"{value:+.3f}" if size >= 0.01 or size == 0 else f"{value:+.2g}"


def _direction_words(direction: str) -> str:
    if direction.startswith("ideal"):
        return f"{direction}: gain = distance to it won"
    return DIRECTION_WORDS.get(direction, direction)


def _error(value: float, low: float | None, high: float | None) -> tuple[float, float]:
    if low is None or high is None:
        return 0.0, 0.0
    return max(0.0, value - low), max(0.0, high - value)


def _tax_bar(ax, y: int, row: dict, marks: dict[str, dict]) -> tuple[str, bool]:
    """One checkpoint's bar in a task's panel, its interval, its numbers beside it; returns its colour kind."""
    kind = (row["group"] if row["group"] in ("alignment", "capability") else "capability", row["gain"] >= 0)
    gid = f"bar{len(marks)}"
    err = _error(row["gain"], row.get("gain_ci_low"), row.get("gain_ci_high"))
    bar = ax.barh([y], [row["gain"]], color=COLOURS[kind], alpha=1.0 if row["significant"] else 0.4, height=0.6,
                  xerr=[[err[0]], [err[1]]], error_kw={"elinewidth": 0.9, "capsize": 2.5})
    bar.patches[0].set_gid(gid)
    ci = f" [{_fmt(row['gain_ci_low'])}, {_fmt(row['gain_ci_high'])}]" if row.get("gain_ci_low") is not None else ""
    ax.text(1.02, y, f"{_fmt(row['gain'])}{ci}{'' if row['significant'] else '  n.s.'}",
            transform=ax.get_yaxis_transform(), va="center", fontsize=7.5, color="#333333")
    marks[gid] = {"class": "bar", "data-task": row["task"], "data-checkpoint": row["label"],
                  "data-significant": str(bool(row["significant"])).lower(),
                  "title": f"{row['label']} on {row['task']}: gain {_fmt(row['gain'])}{ci}"
                           f"{'' if row['significant'] else ' (not significant)'}"}
    return kind


def tax_chart(rows: list[dict], prefix: str = "tax") -> str:
    """``rows``: one per (task, comparison) with task, metric, group, direction, label (the
    comparison), gain, gain_ci_low, gain_ci_high, significant."""
    plt = configure_matplotlib()
    tasks = list(dict.fromkeys(r["task"] for r in sorted(rows, key=lambda r: r["group"] != "alignment")))
    labels = list(dict.fromkeys(r["label"] for r in rows))
    heights = [0.32 * len(labels) + 0.55 for _ in tasks]
    fig, axes = plt.subplots(len(tasks), 1, figsize=(8.4, sum(heights) + 0.5), squeeze=False,
                             gridspec_kw={"height_ratios": heights, "hspace": 1.0})
    marks: dict[str, dict] = {}
    seen: set = set()
    for ax, task in zip(axes[:, 0], tasks):
        mine = {r["label"]: r for r in rows if r["task"] == task}
        first = next(iter(mine.values()))
        ax.set_title(f"{task} · {first['metric']} ({_direction_words(first['direction'])}) · {first['group']}",
                     loc="left")
        ax.axvline(0, color="#555555", linewidth=0.8)
        for y, label in enumerate(labels):
            if mine.get(label, {}).get("gain") is not None:
                seen.add(_tax_bar(ax, y, mine[label], marks))
        ax.set_yticks(range(len(labels)), labels)
        ax.set_ylim(len(labels) - 0.4, -0.6)
        ax.margins(x=0.15)
        for side in ("top", "right"):
            ax.spines[side].set_visible(False)
    axes[-1, 0].set_xlabel("← worse    gain over the reference, in each task's units    better →", color="#555555")
    kinds = [k for k in COLOURS if k in seen]
    if kinds:
        fig.legend([plt.Rectangle((0, 0), 1, 1, color=COLOURS[k]) for k in kinds], [LEGEND[k] for k in kinds],
                   loc="upper center", ncol=4, frameon=False, bbox_to_anchor=(0.5, 1.0))
    fig.subplots_adjust(left=0.2, right=0.72, top=1 - 0.45 / (sum(heights) + 0.5), bottom=0.35 / sum(heights))
    return figure_svg(fig, prefix, marks)


def win_rate_chart(models: list[dict], prefix: str) -> str:
    """``models``: name, win_rate, win_rate_ci, lc_win_rate, lc_win_rate_se."""
    plt = configure_matplotlib()
    fig, ax = plt.subplots(figsize=(7.2, 0.6 * len(models) + 1.0))
    marks: dict[str, dict] = {}
    for y, m in enumerate(models):
        ci = m.get("win_rate_ci")
        raw_err = _error(m["win_rate"], *(ci if ci else (None, None)))
        bars = [("win rate", m["win_rate"], raw_err, "#4c78a8", -0.17)]
        if m.get("lc_win_rate") is not None:
            se = m.get("lc_win_rate_se") or 0.0
            bars.append(("length-controlled", m["lc_win_rate"], (Z95 * se, Z95 * se), "#f58518", 0.17))
        for kind, value, err, colour, offset in bars:
            gid = f"win{len(marks)}"
            bar = ax.barh([y + offset], [value], height=0.32, color=colour, xerr=[[err[0]], [err[1]]],
                          error_kw={"elinewidth": 0.9, "capsize": 2.5}, label=kind if y == 0 else None)
            bar.patches[0].set_gid(gid)
            marks[gid] = {"class": "win-bar", "data-model": m["name"], "data-kind": kind,
                          "title": f"{m['name']}: {kind} {value:.3f} (-{err[0]:.3f}/+{err[1]:.3f})"}
    ax.axvline(0.5, color="#555555", linestyle="--", linewidth=0.8)
    ax.set_xlim(0, 1)
    ax.set_yticks(range(len(models)), [m["name"] for m in models])
    ax.set_ylim(len(models) - 0.5, -0.5)
    ax.set_xlabel("share of prompts where the model's output is preferred (ties count 1/2)")
    ax.legend(loc="lower right", frameon=False)
    for side in ("top", "right"):
        ax.spines[side].set_visible(False)
    fig.subplots_adjust(left=0.25, right=0.97, bottom=0.8 / (0.6 * len(models) + 1.0), top=0.95)
    return figure_svg(fig, prefix, marks)


def breakdown_chart(metric: str, groups: list[str], series: dict[str, dict[str, tuple[float, float | None]]],
                    prefix: str, ideal: float | None = None) -> str:
    """``series``: checkpoint -> group -> (value, stderr)."""
    plt = configure_matplotlib()
    names = list(series)
    height = 0.2 * len(groups) * max(1, len(names)) + 1.1
    fig, ax = plt.subplots(figsize=(7.2, height))
    width = 0.8 / max(1, len(names))
    for i, name in enumerate(names):
        ys, values, errs = [], [], []
        for y, group in enumerate(groups):
            value, se = series[name].get(group, (math.nan, None))
            if value is None or math.isnan(value):
                continue
            ys.append(y - 0.4 + width * (i + 0.5))
            values.append(value)
            errs.append(Z95 * se if se else 0.0)
        ax.barh(ys, values, height=width * 0.9, xerr=errs, color=CHECKPOINT_COLOURS[i % len(CHECKPOINT_COLOURS)],
                error_kw={"elinewidth": 0.8, "capsize": 2}, label=name)
    if ideal is not None:
        ax.axvline(ideal, color="#555555", linestyle="--", linewidth=0.8)
    ax.set_yticks(range(len(groups)), groups)
    ax.set_ylim(len(groups) - 0.5, -0.5)
    ax.set_xlabel(f"{metric} (bars: ±1.96 standard errors{'; dashed: the ideal' if ideal is not None else ''})")
    ax.legend(loc="lower left", bbox_to_anchor=(0.0, 1.0), ncol=min(4, len(names)), frameon=False)
    for side in ("top", "right"):
        ax.spines[side].set_visible(False)
    fig.subplots_adjust(left=0.25, right=0.97, bottom=0.6 / height, top=1 - (0.2 + 0.2 * math.ceil(len(names) / 4))
                        / height)
    return figure_svg(fig, prefix)


def headline_chart(rows: list[dict], names: list[str], prefix: str = "headline") -> str:
    """Each task's primary metric per checkpoint as a dot with its 95% interval, one panel per task
    on its own scale. ``rows``: task, metric, direction, values {checkpoint: (value, low, high)}."""
    plt = configure_matplotlib()
    height = 0.22 * len(names) + 0.5
    fig, axes = plt.subplots(len(rows), 1, figsize=(7.2, height * len(rows) + 0.4), squeeze=False,
                             gridspec_kw={"hspace": 1.1})
    marks: dict[str, dict] = {}
    for ax, row in zip(axes[:, 0], rows):
        ax.set_title(f"{row['task']} · {row['metric']} ({DIRECTION_WORDS.get(row['direction'], row['direction'])})",
                     loc="left")
        for y, name in enumerate(names):
            value, low, high = row["values"].get(name, (None, None, None))
            if value is None or not math.isfinite(value):
                continue
            err = _error(value, low, high)
            colour = CHECKPOINT_COLOURS[y % len(CHECKPOINT_COLOURS)]
            gid = f"dot{len(marks)}"
            line = ax.errorbar([value], [y], xerr=[[err[0]], [err[1]]], fmt="o", color=colour, markersize=4,
                               elinewidth=1.0, capsize=2.5)
            line.lines[0].set_gid(gid)
            marks[gid] = {"class": "dot", "data-task": row["task"], "data-checkpoint": name,
                          "title": f"{name}: {value:.4g}" + (f" [{low:.4g}, {high:.4g}]" if low is not None else "")}
        if row.get("ideal") is not None:
            ax.axvline(row["ideal"], color="#555555", linestyle="--", linewidth=0.8)
        ax.set_yticks(range(len(names)), names)
        ax.set_ylim(len(names) - 0.5, -0.5)
        ax.margins(x=0.1)
        for side in ("top", "right"):
            ax.spines[side].set_visible(False)
    fig.subplots_adjust(left=0.24, right=0.97, top=1 - 0.3 / (height * len(rows) + 0.4),
                        bottom=0.25 / (height * len(rows) + 0.4))
    return figure_svg(fig, prefix, marks)
