"""Reporting: results files, the machine line, markdown/CSV tables and the comparison plots."""

from __future__ import annotations

import json
import platform
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from .checkpoint import write_bytes_atomic

if TYPE_CHECKING:
    from .results import Comparison


def write_results(payload: dict[str, Any], path: str | Path) -> None:
    """Write a benchmark's results as indented JSON (creating the folder) and say where. The file is
    replaced atomically, so a run killed while writing leaves the previous results intact."""
    path = Path(path)
    write_bytes_atomic(json.dumps(payload, indent=2).encode(), path)
    print(f"wrote {path}")


def run_recorder(
    payload: dict[str, Any], path: str | Path, *, show_result: bool = False, wall_seconds: bool = True
) -> Callable[[str, str, Callable[[], Any]], Any]:
    """``record(section, key, fn)`` for resumable benchmarks: returns ``payload["runs"][section][key]``
    when a previous run finished it, else runs ``fn``, stores its result (adding ``wall_seconds`` to a
    dict result when asked) and writes ``payload`` to ``path`` at once."""

    def record(section: str, key: str, fn: Callable[[], Any]) -> Any:
        runs = payload.setdefault("runs", {}).setdefault(section, {})
        if key in runs:
            return runs[key]
        start = time.perf_counter()
        result = runs[key] = fn()
        seconds = time.perf_counter() - start
        if wall_seconds and isinstance(result, dict):
            result.setdefault("wall_seconds", seconds)
        shown = f": {result}" if show_result else ""
        print(f"[{section}] {key}{shown}: done in {seconds:.0f} s", flush=True)
        write_results(payload, path)
        return result

    return record


def cpu_name() -> str:
    """The CPU's model name (``/proc/cpuinfo``), else what ``platform`` knows."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine() -> str:
    """One line naming the machine and versions, for results files."""
    import avalanche

    return (
        f"{platform.machine()} {platform.processor() or ''} {torch.get_num_threads()} threads, "
        f"{'cuda ' + torch.cuda.get_device_name(0) if torch.cuda.is_available() else 'CPU'}; "
        f"python {platform.python_version()}, torch {torch.__version__}, avalanche {avalanche.__version__}"
    )


def format_table(results: dict[str, dict[int, float]], metric: str) -> str:
    """A markdown table: one row per strategy, one column per evaluation point."""
    points = sorted({k for r in results.values() for k in r})
    head = "| strategy | " + " | ".join(str(p) for p in points) + " |"
    rule = "|---|" + "---|" * len(points)
    rows = [
        f"| {n} | " + " | ".join(f"{r.get(p, float('nan')):.3f}" for p in points) + " |"
        for n, r in results.items()
    ]
    return "\n".join([f"{metric} after each number of experiences seen", "", head, rule, *rows])


# ---------------------------------------------------------------------------------------------------
# Plots and files
# ---------------------------------------------------------------------------------------------------
def have_matplotlib() -> bool:
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        return False
    return True


def curve_figure(comparison: Comparison):
    """Metric against experiences seen, one line per strategy (mean over seeds, band: ± std)."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(6.4, 4.2), layout="constrained")
    ax = fig.add_subplot()
    for name in comparison.strategies:
        stats = comparison.curve_stats(name)
        xs = list(stats)
        mean = [stats[x][0] for x in xs]
        std = [stats[x][1] for x in xs]
        ax.plot(xs, mean, marker="o", ms=3, label=name)
        if len(comparison.seeds) > 1:
            ax.fill_between(
                xs,
                [m - s for m, s in zip(mean, std, strict=True)],
                [m + s for m, s in zip(mean, std, strict=True)],
                alpha=0.2,
            )
    ax.set_xlabel(f"{comparison.unit} seen")
    ax.set_ylabel(comparison.title)
    if comparison.lower_is_better:  # errors span orders of magnitude: log scale, plain tick labels
        from matplotlib.ticker import FuncFormatter, NullFormatter

        ax.set_yscale("log")
        plain = FuncFormatter(lambda v, _: f"{v:g}")
        ax.yaxis.set_major_formatter(plain)
        low, high = ax.get_ylim()
        ax.yaxis.set_minor_formatter(plain if high / low < 10 else NullFormatter())
    ax.grid(alpha=0.3)
    ax.legend()
    return fig


def matrix_figure(comparison: Comparison):
    """The forgetting matrix of every strategy: metric on experience j (columns) after training on the
    first k experiences (rows, at the evaluation points); mean over seeds."""
    import numpy as np
    from matplotlib.figure import Figure

    names = comparison.strategies
    fig = Figure(figsize=(3.2 * len(names) + 1.0, 3.4), layout="constrained")
    axes = fig.subplots(1, len(names), squeeze=False)[0]
    mats = {n: np.array(comparison.matrix_mean(n), dtype=float) for n in names}
    finite = np.concatenate([m[np.isfinite(m)] for m in mats.values()]) if mats else np.array([0.0])
    vmin, vmax = (float(finite.min()), float(finite.max())) if finite.size else (0.0, 1.0)
    cmap = "viridis_r" if comparison.lower_is_better else "viridis"
    image = None
    points = comparison.points()
    for ax, name in zip(axes, names, strict=True):
        image = ax.imshow(mats[name], aspect="auto", cmap=cmap, vmin=vmin, vmax=vmax, interpolation="nearest")
        ax.set_title(name)
        ax.set_xlabel(f"{comparison.unit[:-1] if comparison.unit.endswith('s') else comparison.unit} index")
        ax.set_yticks(range(len(points)), [str(p) for p in points])
    axes[0].set_ylabel(f"after {comparison.unit} seen")
    if image is not None:
        fig.colorbar(image, ax=list(axes), label=comparison.metric)
    return fig


def plasticity_figure(learner: Any):
    """An FLP learner's learned plasticity: the distribution of its plasticity rates per layer, and its
    feedback strengths. None for learners without plasticity coefficients (OML)."""
    if not hasattr(learner, "plasticity_rates"):
        return None
    from matplotlib.figure import Figure

    fig = Figure(figsize=(9, 3.4), layout="constrained")
    ax1, ax2 = fig.subplots(1, 2, width_ratios=(2, 1))
    for l, rate in enumerate(learner.plasticity_rates):
        values = rate.detach().cpu().reshape(-1).numpy()
        ax1.hist(values, bins=50, alpha=0.5, label=f"layer {l + 1}")
    ax1.set_xlabel("plasticity rate η")
    ax1.set_ylabel("synapses")
    ax1.set_yscale("log")
    ax1.legend()
    betas = [float(b.detach()) for b in learner.feedback_strengths]
    ax2.bar([str(i + 1) for i in range(len(betas))], betas)
    ax2.set_xlabel("layer")
    ax2.set_ylabel("feedback strength β")
    fig.suptitle("FLP: learned plasticity coefficients")
    return fig


def plasticity_summary(learner: Any) -> dict[str, float]:
    """FLP: mean/std of the plasticity rates and the feedback strength per layer; a plasticity rule: its
    coefficients (``rule/<term>``); empty for OML."""
    if hasattr(learner, "rule") and callable(learner.rule):
        return {f"rule/{term}": value for term, value in learner.rule().items()}
    if not hasattr(learner, "plasticity_rates"):
        return {}
    out = {}
    for l, (rate, beta) in enumerate(zip(learner.plasticity_rates, learner.feedback_strengths, strict=True)):
        r = rate.detach().double()
        out[f"plasticity/layer{l + 1}_mean"] = r.mean().item()
        out[f"plasticity/layer{l + 1}_std"] = r.std().item() if r.numel() > 1 else 0.0
        out[f"plasticity/layer{l + 1}_feedback_strength"] = float(beta.detach())
    return out


def figures(comparison: Comparison) -> dict[str, Any]:
    """All plots of a comparison as matplotlib figures, by file stem (empty without matplotlib)."""
    if not have_matplotlib():
        return {}
    out = {"curve": curve_figure(comparison), "forgetting_matrix": matrix_figure(comparison)}
    for name, learner in comparison.learners.items():
        if name in comparison.strategies:
            fig = plasticity_figure(learner)
            if fig is not None:
                out[f"plasticity_{name}"] = fig
    return out


def write_outputs(
    comparison: Comparison, out: str | Path, figs: Mapping[str, Any] | None = None
) -> list[Path]:
    """Write ``table.md``, ``table.csv``, ``results.json`` and (with matplotlib) one PNG per figure.

    :returns: the files written.
    """
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for fname, text in (
        ("table.md", comparison.markdown() + "\n"),
        ("table.csv", comparison.csv()),
        ("results.json", json.dumps(comparison.to_json(), indent=2, default=repr) + "\n"),
    ):
        path = out / fname
        write_bytes_atomic(text.encode(), path)
        written.append(path)
    for stem, fig in (figures(comparison) if figs is None else figs).items():
        path = out / f"{stem}.png"
        fig.savefig(path, dpi=110)
        written.append(path)
    return written
