"""Reading a learned rule: the coefficients' trajectory, the final-rule table, the rule as a formula,
saved as files and logged to W&B when a logger is given."""

from __future__ import annotations

import csv
import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from .terms import get_term


def surviving_terms(coefficients: Mapping[str, float], *, relative: float = 0.05) -> list[str]:
    """Terms whose ``|theta_r|`` is at least ``relative`` times the largest ``|theta|`` (the rule's
    readable core after L1), largest first."""
    if not coefficients:
        return []
    top = max(abs(v) for v in coefficients.values())
    if top == 0:
        return []
    kept = [t for t, v in coefficients.items() if abs(v) >= relative * top]
    return sorted(kept, key=lambda t: -abs(coefficients[t]))


def rule_formula(coefficients: Mapping[str, float], *, relative: float = 0.05, digits: int = 3) -> str:
    """The rule as one line, e.g. ``dW = 0.0312 [-e_l^T y_{l-1}] + 0.0041 [y_l^T y_{l-1} - (y_l^T y_l) W]``
    (terms below ``relative`` of the largest coefficient are left out and counted)."""
    kept = surviving_terms(coefficients, relative=relative)
    parts = [f"{coefficients[t]:+.{digits}g} [{get_term(t).formula}]" for t in kept]
    dropped = len(coefficients) - len(kept)
    body = " ".join(parts) if parts else "0"
    tail = f"   ({dropped} term(s) below {relative:g} x max |theta| omitted)" if dropped else ""
    return f"dW = {body.lstrip('+')}{tail}"


def rule_table(coefficients: Mapping[str, float]) -> list[dict[str, Any]]:
    """One row per term: index, name, formula, coefficient, ``|theta| / max |theta|``, source."""
    top = max((abs(v) for v in coefficients.values()), default=0.0) or 1.0
    return [
        {
            "r": r,
            "term": t,
            "formula": get_term(t).formula,
            "theta": float(v),
            "relative": abs(float(v)) / top,
            "source": get_term(t).source,
        }
        for r, (t, v) in enumerate(coefficients.items())
    ]


def rule_markdown(coefficients: Mapping[str, float]) -> str:
    """:func:`rule_table` as a markdown table."""
    rows = rule_table(coefficients)
    head = "| r | term | formula | theta | abs/max |\n|---|---|---|---|---|"
    body = [
        f"| {x['r']} | {x['term']} | `{x['formula']}` | {x['theta']:.4g} | {x['relative']:.3f} |"
        for x in rows
    ]
    return "\n".join([head, *body])


def coefficient_figure(trajectory: Mapping[str, Sequence[float]], *, title: str = "plasticity coefficients"):
    """Matplotlib figure of every coefficient against meta-training step (``trajectory`` as from
    :func:`~avalanche_plasticity.plasticity_rules.training.coefficient_history`)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4))
    steps = trajectory["step"]
    for name, values in trajectory.items():
        if name != "step":
            ax.plot(steps, values, label=name)
    ax.set_xlabel("meta-training step")
    ax.set_ylabel("theta")
    ax.set_title(title)
    ax.axhline(0, color="k", lw=0.5)
    ax.legend(fontsize=7, ncol=2)
    fig.tight_layout()
    return fig


def save_rule_report(
    folder: str | Path,
    coefficients: Mapping[str, float],
    trajectory: Mapping[str, Sequence[float]] | None = None,
    *,
    name: str = "rule",
    logger: Any = None,
) -> dict[str, str]:
    """Write ``<name>_table.csv``, ``<name>_table.md``, ``<name>_formula.txt``, ``<name>.json`` and (with a
    trajectory and matplotlib) ``<name>_coefficients.png`` under ``folder``; with a
    :class:`~avalanche_plasticity.wandb_logger.WandBLogger` also log the table, the figure and the final
    coefficients (summary). Returns the paths written."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    rows = rule_table(coefficients)
    paths = {}
    with open(folder / f"{name}_table.csv", "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]) if rows else ["term"])
        w.writeheader()
        w.writerows(rows)
    paths["table_csv"] = str(folder / f"{name}_table.csv")
    (folder / f"{name}_table.md").write_text(rule_markdown(coefficients) + "\n")
    paths["table_md"] = str(folder / f"{name}_table.md")
    formula = rule_formula(coefficients)
    (folder / f"{name}_formula.txt").write_text(formula + "\n")
    paths["formula"] = str(folder / f"{name}_formula.txt")
    payload = {"coefficients": dict(coefficients), "formula": formula, "trajectory": trajectory}
    (folder / f"{name}.json").write_text(json.dumps(payload, indent=2))
    paths["json"] = str(folder / f"{name}.json")
    fig = None
    if trajectory is not None:
        try:
            fig = coefficient_figure(trajectory, title=f"{name}: plasticity coefficients")
        except ImportError:
            fig = None
        if fig is not None:
            fig.savefig(folder / f"{name}_coefficients.png", dpi=110)
            paths["figure"] = str(folder / f"{name}_coefficients.png")
    if logger is not None:
        columns = ["r", "term", "formula", "theta", "relative", "source"]
        logger.log_table(f"{name}/rule", columns, [[r[c] for c in columns] for r in rows])
        if fig is not None:
            logger.log_figure(f"{name}/coefficients", fig)
        logger.log_summary(
            {**{f"{name}/theta/{k}": float(v) for k, v in coefficients.items()}, f"{name}/formula": formula}
        )
    if fig is not None:
        import matplotlib.pyplot as plt

        plt.close(fig)
    return paths


def log_coefficients(
    logger: Any, step: int, coefficients: Mapping[str, float], *, name: str = "rule"
) -> None:
    """Log the coefficients at one meta-training step through a logger's ``log_single_metric``."""
    for k, v in coefficients.items():
        logger.log_single_metric(f"{name}/theta/{k}", float(v), step)
