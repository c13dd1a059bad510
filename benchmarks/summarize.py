"""Write benchmarks/RESULTS.md from the JSON files in benchmarks/results/ (no number typed by hand).

python benchmarks/summarize.py
"""

from __future__ import annotations

import json
from pathlib import Path

HERE = Path(__file__).resolve().parent
COMMANDS = {
    "continual_omniglot": (
        "AVP_THREADS=1 python benchmarks/continual_omniglot.py --runs 5 --data-root ../shared/data"
    ),
    "continual_sine": "AVP_THREADS=1 python benchmarks/continual_sine.py --runs 5",
    "meta_training_speed": "python benchmarks/meta_training_speed.py --meta-batch 16 --threads 1",
}


def load(name: str) -> dict | None:
    path = HERE / "results" / f"{name}.json"
    return json.loads(path.read_text()) if path.exists() else None


def omniglot(d: dict) -> list[str]:
    counts = d["config"]["counts"]
    lines = [
        "| strategy | " + " | ".join(f"{c} classes" for c in counts) + " | SGD lr |",
        "|---|" + "---|" * (len(counts) + 1),
    ]
    for name, r in d["results"].items():
        cells = [f"{100 * r[str(c)]['mean']:.1f} ± {100 * r[str(c)]['std']:.1f}" for c in counts]
        lines.append(f"| {name} | " + " | ".join(cells) + f" | {r.get('lr') or '-'} |")
    return lines


def sine(d: dict) -> list[str]:
    lines = [
        "| strategy | final MSE (10 functions) | MSE after functions 1, 2, 5, 10 | SGD lr |",
        "|---|---|---|---|",
    ]
    for name, r in d["results"].items():
        curve = r["mse_after_each_function"]
        lines.append(
            f"| {name} | {r['final_mse']['mean']:.3f} ± {r['final_mse']['std']:.3f} | "
            + ", ".join(f"{curve[i]:.3f}" for i in (0, 1, 4, 9))
            + f" | {r.get('lr') or '-'} |"
        )
    return lines


def main() -> None:
    out = [
        "# Benchmark results",
        "",
        "Written by `python benchmarks/summarize.py` from `benchmarks/results/*.json`; each section names "
        "the command and machine that produced it. Accuracies are percentages of the test images of all "
        "classes seen (mean ± std over runs with different class orders / problems).",
        "",
    ]
    for name, title, fmt in (
        ("continual_omniglot", "Continual Omniglot (OML protocol)", omniglot),
        ("continual_sine", "Continual sine regression", sine),
    ):
        d = load(name)
        if d is None:
            continue
        out += [
            f"## {title}",
            "",
            f"Command: `{COMMANDS[name]}`  ",
            f"Machine: {d['machine']}  ",
            f"Wall time: {d.get('seconds', 0) / 60:.1f} min (evaluation; meta-training checkpoints reused)",
            "",
            *fmt(d),
            "",
        ]
    d = load("meta_training_speed")
    if d is not None:
        out += [
            "## FLP meta-training throughput",
            "",
            f"Command: `{COMMANDS['meta_training_speed']}`  ",
            f"Machine: {d['machine']}",
            "",
            "| batched (episodes/s) | per-episode loop (episodes/s) | ratio |",
            "|---|---|---|",
            f"| {d['batched_episodes_per_s']:.2f} | {d['loop_episodes_per_s']:.2f} | {d['ratio']:.2f}x |",
            "",
        ]
    notes = HERE / "NOTES.md"
    if notes.exists():
        out += [notes.read_text()]
    (HERE / "RESULTS.md").write_text("\n".join(out))
    print((HERE / "RESULTS.md").read_text())


if __name__ == "__main__":
    main()
