"""The benchmark's results for people: the table, the profile and scaling lines, the chart."""

from __future__ import annotations

import os
import pathlib
from typing import TYPE_CHECKING, Any

from handoff_tools.bench_children import DLT_BACKENDS, _ratio

if TYPE_CHECKING:
    from rich.table import Table


def _fmt(value: float | None, spec: str) -> str:
    return "—" if value is None else format(value, spec)


def render_table(result: dict) -> Table:
    """A rich table of one ``run_bench`` result, for the CLI."""
    from rich.table import Table

    rows = result["rows"]
    caption = "rows/s = source rows scanned ÷ seconds; ratio = handoff rows/s ÷ that path's rows/s"
    pairs = result.get("ratio_vs_bound_tries") or []
    if len(pairs) > 1:  # each try ran the bound, then handoff
        caption += f"; ÷ the bound try by try (each the bound, then handoff): {min(pairs):.2f}–{max(pairs):.2f}"
    table = Table(title=f"Extract benchmark: {rows:,} source rows, {result['selected_rows']:,} selected",
                  caption=caption)  # fmt: skip
    table.add_column("path")
    table.add_column("seconds", justify="right")
    table.add_column("rows/s", justify="right")
    table.add_column("peak RSS MB", justify="right")
    table.add_column("handoff ÷ path", justify="right")
    hand = result.get("handoff_rows_per_s")

    def add(label: str, prefix: str) -> None:
        rate = result.get(f"{prefix}_rows_per_s")
        table.add_row(
            label,
            _fmt(result.get(f"{prefix}_seconds"), ".2f"),
            _fmt(rate, ",.0f"),
            _fmt(result.get(f"{prefix}_peak_rss_mb"), ",.0f"),
            _fmt(_ratio(hand, rate), ".2f") if prefix != "handoff" else "1.00",
        )

    add(f"floor, ORDER BY id ({result.get('floor_engine', 'adbc')} → Parquet)", "floor")
    if result.get("floor_unsorted_seconds") is not None:
        add("floor, unsorted", "floor_unsorted")
    if result.get("accounted_seconds") is not None:
        add("sorted floor + exclusion accounting (CASE per row)", "accounted")
    if result.get("bound_seconds") is not None:
        add(f"SQL-level bound: {result.get('bound_form', '?')} accounting + unsorted + client sort", "bound")
    if result.get("bound_other_seconds") is not None:
        add(f"the same with {result.get('bound_other_form', '?')} accounting", "bound_other")
    for backend in DLT_BACKENDS:
        if f"dlt_{backend}_rows_per_s" in result:
            add(f"dlt sql_table ({backend})", f"dlt_{backend}")
    add(f"handoff end to end ({result.get('handoff_status', '?')})", "handoff")
    return table


_WALL_STEPS = ("prepare", "extract_validate_stage", "spill_runs", "merge_encode_hash_write", "record",
               "approve", "deliver")  # fmt: skip
# Phases that only hold other steps: their CPU and waits are those steps', counted there already.
_CONTAINERS = ("extract_validate_stage", "merge_encode_hash_write")


def profile_line(result: dict) -> str:
    """Where handoff's seconds went: its phases, the CPU each step spent, and whose CPU the machine spent."""
    wall = result.get("handoff_seconds") or 0.0
    phases = result.get("handoff_phase_seconds") or {}
    steps = result.get("handoff_step_cpu_seconds") or {}
    cpu = result.get("handoff_cpu_seconds") or {}
    text = f"handoff profile, {result['rows']:,} rows: {wall:.2f} s wall; " + ", ".join(
        f"{k} {phases[k]:.2f} s" for k in _WALL_STEPS if k in phases
    )
    if steps:
        busy = {k: v for k, v in steps.items() if k not in _CONTAINERS}
        text += "; CPU by step: " + ", ".join(f"{k} {v:.2f} s" for k, v in sorted(busy.items(), key=lambda kv: -kv[1]))
    waits = {
        k: v for k, v in (result.get("handoff_step_wait_seconds") or {}).items() if v >= 0.005 and k not in _CONTAINERS
    }
    if waits:  # runnable but without a core: starved by the database (or anything else on the machine)
        text += "; waited for a core: " + ", ".join(f"{k} {v:.2f} s" for k, v in sorted(waits.items(),
                                                                                         key=lambda kv: -kv[1]))  # fmt: skip
    if cpu:
        capacity = cpu.get("cores", 1.0) * wall
        text += (
            f"; CPU: handoff process {cpu.get('handoff_process_cpu_s', 0):.2f} s, check workers "
            f"{cpu.get('check_workers_cpu_s', 0):.2f} s, rest of the machine (database, S3 endpoint) "
            f"{cpu.get('rest_of_machine_cpu_s', 0):.2f} s, of {capacity:.2f} core-seconds"
        )
    spans = result.get("handoff_step_spans") or {}
    if spans:  # in the order they ended: what the end waited for
        text += "; timeline (first start–last end, s): " + ", ".join(
            f"{k} {a:.2f}–{b:.2f}" for k, (a, b) in sorted(spans.items(), key=lambda kv: kv[1][1])
        )
    return text


def scaling_line(results: list[dict]) -> str:
    """The linearity and flat-memory check across sizes: smallest vs largest run."""
    ordered = sorted(results, key=lambda r: r["rows"])
    small, big = ordered[0], ordered[-1]
    rate_ratio = _ratio(big.get("handoff_rows_per_s"), small.get("handoff_rows_per_s"))
    return (
        f"scaling: handoff {small['rows']:,} rows {_fmt(small.get('handoff_rows_per_s'), ',.0f')} rows/s, "
        f"peak RSS {_fmt(small.get('handoff_peak_rss_mb'), ',.0f')} MB; "
        f"{big['rows']:,} rows {_fmt(big.get('handoff_rows_per_s'), ',.0f')} rows/s, "
        f"peak RSS {_fmt(big.get('handoff_peak_rss_mb'), ',.0f')} MB; "
        f"rows/s ratio large/small {_fmt(rate_ratio, '.2f')}"
    )


def _two_panels() -> tuple[Any, Any, Any]:
    """A figure with two side-by-side axes, drawn off-screen."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4.5))
    return fig, left, right


def _finish(fig: Any, panels: list[tuple[Any, str, str]], rows: list[int], path: str | os.PathLike[str],
            legend_size: str = "medium") -> pathlib.Path:  # fmt: skip
    """Label each (axes, y label, title) against source rows (log scale for several sizes); write the PNG."""
    import matplotlib.pyplot as plt

    for ax, ylabel, title in panels:
        ax.set_xlabel("source rows")
        ax.set_ylabel(ylabel)
        ax.set_title(title)
        if len(set(rows)) > 1:
            ax.set_xscale("log")
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize=legend_size)
    fig.tight_layout()
    out = pathlib.Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=120)
    plt.close(fig)
    return out


def plot(results: list[dict], path: str | os.PathLike[str]) -> pathlib.Path:
    """Write a PNG: rows/s and peak RSS against source rows, one line per path."""
    ordered = sorted(results, key=lambda r: r["rows"])
    series = [("floor (sorted)", "floor"), ("floor (unsorted)", "floor_unsorted"), ("floor + CASE accounting", "accounted"),
              ("SQL-level bound", "bound"), ("bound, the other aggregate", "bound_other"),
              ("dlt connectorx", "dlt_connectorx"),
              ("dlt pyarrow", "dlt_pyarrow"), ("handoff", "handoff")]  # fmt: skip
    fig, ax_rate, ax_rss = _two_panels()
    for label, prefix in series:
        pts = [(r["rows"], r.get(f"{prefix}_rows_per_s"), r.get(f"{prefix}_peak_rss_mb")) for r in ordered]
        rate_pts = [(x, y) for x, y, _ in pts if y is not None]
        rss_pts = [(x, m) for x, _, m in pts if m is not None]
        if rate_pts:
            ax_rate.plot(*zip(*rate_pts, strict=True), marker="o", label=label)
        if rss_pts:
            ax_rss.plot(*zip(*rss_pts, strict=True), marker="o", label=label)
    return _finish(fig, [(ax_rate, "source rows scanned per second", "Throughput"),
                         (ax_rss, "peak RSS (MB)", "Peak memory per child process")],
                   [r["rows"] for r in ordered], path)  # fmt: skip


# ``bench --processes``: (label, result key) per whole-process path.
PROCESS_SERIES = [("ConnectorX export", "connectorx"), ("handoff transfer", "transfer"), ("handoff release", "release")]


def plot_processes(result: dict, path: str | os.PathLike[str]) -> pathlib.Path:
    """Write a PNG of a ``bench --processes`` result: seconds and peak RSS against source rows, one line
    per process (ConnectorX, transfer, release), dashed where the source had the advised index."""
    ordered = sorted(result["sizes"], key=lambda r: r["rows"])
    fig, ax_time, ax_rss = _two_panels()
    for i, (label, key) in enumerate(PROCESS_SERIES):
        for suffix, style, pick in (("", "-", lambda r: r), (", advised index", "--", lambda r: r.get("indexed"))):
            pts = [(r["rows"], got[key]) for r in ordered if (got := pick(r)) and key in got]
            if not pts:
                continue
            for ax, field in ((ax_time, "seconds"), (ax_rss, "peak_rss_mb")):  # one colour per process
                ax.plot([x for x, _ in pts], [p[field] for _, p in pts], style, marker="o", color=f"C{i}",
                        label=label + suffix)  # fmt: skip
    title = f"Whole processes ({result['cpus']} CPUs, median of {result['repeat']})"
    return _finish(fig, [(ax_time, "seconds, spawn to exit (median)", title),
                         (ax_rss, "peak RSS of the process (MB)", "Peak memory per process")],
                   [r["rows"] for r in ordered], path, legend_size="small")  # fmt: skip
