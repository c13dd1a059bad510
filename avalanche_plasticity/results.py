"""Results of running strategies on streams, as plain data: one strategy on one seed (:class:`RunResult`)
and several side by side (:class:`Comparison`, with its markdown and CSV tables). Reporting
(:mod:`avalanche_plasticity.reporting`) and the runner (:mod:`avalanche_plasticity.experiments`) both read
it; it imports neither."""

from __future__ import annotations

import csv
import io
import math
import statistics
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from .reporting import machine


@dataclass
class RunResult:
    """One strategy on one stream seed."""

    strategy: str
    seed: int
    curve: dict[int, float]
    matrix: dict[int, dict[int, float]]
    seconds: float
    config: dict[str, Any] = field(default_factory=dict)

    @property
    def final(self) -> float:
        return self.curve[max(self.curve)]

    def to_json(self) -> dict[str, Any]:
        return {
            "strategy": self.strategy,
            "seed": self.seed,
            "curve": {str(k): v for k, v in self.curve.items()},
            "matrix": {str(k): {str(j): v for j, v in row.items()} for k, row in self.matrix.items()},
            "seconds": self.seconds,
            "config": self.config,
        }

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> RunResult:
        return cls(
            d["strategy"],
            int(d["seed"]),
            {int(k): float(v) for k, v in d["curve"].items()},
            {int(k): {int(j): float(v) for j, v in row.items()} for k, row in d["matrix"].items()},
            float(d["seconds"]),
            dict(d.get("config", {})),
        )


def _stats(values: Sequence[float]) -> tuple[float, float]:
    """Mean and population std of the finite values (NaN if none is finite)."""
    finite = [v for v in values if math.isfinite(v)]
    if not finite:
        return float("nan"), float("nan")
    return statistics.mean(finite), statistics.pstdev(finite)


@dataclass
class Comparison:
    """Several strategies on the same streams: the functional result of :func:`run_comparison`."""

    scenario: str
    runs: list[RunResult]
    config: dict[str, Any]
    seconds: float = 0.0
    learners: dict[str, Any] = field(default_factory=dict)
    metric: str = ""  # "mse", "accuracy", ...; default: the registered scenario's
    title: str = ""  # e.g. "Accuracy on all classes seen"
    unit: str = ""  # what the evaluation points count: "functions", "classes", "experiences"
    lower_is_better: bool | None = None

    def __post_init__(self) -> None:
        if not self.metric or not self.title or not self.unit or self.lower_is_better is None:
            from .registry import scenario_spec

            spec = scenario_spec(self.scenario)
            self.metric = self.metric or spec.metric
            self.title = self.title or spec.title
            self.unit = self.unit or spec.unit
            if self.lower_is_better is None:
                self.lower_is_better = spec.lower_is_better

    @property
    def strategies(self) -> list[str]:
        return list(dict.fromkeys(r.strategy for r in self.runs))

    @property
    def seeds(self) -> list[int]:
        return sorted({r.seed for r in self.runs})

    def by_strategy(self) -> dict[str, list[RunResult]]:
        out: dict[str, list[RunResult]] = {}
        for r in self.runs:
            out.setdefault(r.strategy, []).append(r)
        return out

    def points(self) -> list[int]:
        return sorted({k for r in self.runs for k in r.curve})

    def curve_stats(self, strategy: str) -> dict[int, tuple[float, float]]:
        runs = self.by_strategy()[strategy]
        return {p: _stats([r.curve[p] for r in runs if p in r.curve]) for p in self.points()}

    def matrix_mean(self, strategy: str) -> list[list[float]]:
        """Rows: evaluation points; columns: experiences; mean over seeds, NaN where not evaluated."""
        runs = self.by_strategy()[strategy]
        points = self.points()
        width = max(points)
        return [
            [_stats([r.matrix.get(p, {}).get(j, float("nan")) for r in runs])[0] for j in range(width)]
            for p in points
        ]

    def summary(self) -> dict[str, dict[str, Any]]:
        """Per strategy: ``final_<metric>`` (mean over seeds), its std, per-seed finals and the mean curve."""
        key = f"final_{self.metric}"
        out = {}
        for name, runs in self.by_strategy().items():
            mean, std = _stats([r.final for r in runs])
            stats = self.curve_stats(name)
            out[name] = {
                key: mean,
                f"{key}_std": std,
                f"{key}_per_seed": {str(r.seed): r.final for r in runs},
                "curve": {str(p): m for p, (m, _) in stats.items()},
                "curve_std": {str(p): s for p, (_, s) in stats.items()},
                "forgetting_matrix": self.matrix_mean(name),
                "lr": runs[0].config.get("lr"),
            }
        return out

    def to_json(self) -> dict[str, Any]:
        return {
            "scenario": self.scenario,
            "metric": self.metric,
            "seconds": self.seconds,
            "machine": machine(),
            "config": self.config,
            "evaluation_points": self.points(),
            "results": self.summary(),
            "runs": [r.to_json() for r in self.runs],
        }

    def _cell(self, mean: float, std: float, diverged: int = 0) -> str:
        """``mean [± std]`` over the finite runs, noting the runs that diverged (NaN: a local rule's
        weights became non-finite and the stream stopped, or a baseline's loss blew up)."""
        if math.isnan(mean):
            return "diverged"
        cell = f"{mean:.3f} ± {std:.3f}" if len(self.seeds) > 1 else f"{mean:.3f}"
        return f"{cell} ({diverged} diverged)" if diverged else cell

    def markdown(self) -> str:
        """A markdown table: one row per strategy, one column per evaluation point (mean ± std over
        seeds when there are several)."""
        points = self.points()
        seeds = self.seeds
        note = f"mean ± std over seeds {seeds}" if len(seeds) > 1 else f"seed {seeds[0]}"
        head = "| strategy | " + " | ".join(str(p) for p in points) + " |"
        rule = "|---|" + "---:|" * len(points)
        rows = []
        for name in self.strategies:
            stats, runs = self.curve_stats(name), self.by_strategy()[name]
            nans = {p: sum(1 for r in runs if p in r.curve and math.isnan(r.curve[p])) for p in points}
            rows.append(f"| {name} | " + " | ".join(self._cell(*stats[p], nans[p]) for p in points) + " |")
        return "\n".join(
            [f"{self.title} after each number of {self.unit} seen ({note})", "", head, rule, *rows]
        )

    def csv(self) -> str:
        """Long format: ``strategy, <unit>_seen, mean, std, seeds`` and one column per seed."""
        buf = io.StringIO()
        w = csv.writer(buf, lineterminator="\n")
        seeds = self.seeds
        w.writerow(
            ["strategy", f"{self.unit}_seen", f"{self.metric}_mean", f"{self.metric}_std", "seeds"]
            + [f"seed{s}" for s in seeds]
        )
        for name, runs in self.by_strategy().items():
            by_seed = {r.seed: r for r in runs}
            for p, (m, s) in self.curve_stats(name).items():
                per_seed = [by_seed[x].curve.get(p, "") if x in by_seed else "" for x in seeds]
                w.writerow([name, p, m, s, len(runs), *per_seed])
        return buf.getvalue()
