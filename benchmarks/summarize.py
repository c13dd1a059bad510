"""Write benchmarks/RESULTS.md from the JSON files in benchmarks/results/ (no number typed by hand).

    python benchmarks/summarize.py --write               # regenerate RESULTS.md (replaces hand-made text)
    python benchmarks/summarize.py --section alignment   # print one section's tables, write nothing

RESULTS.md carries hand-written context beside the generated tables, so regenerating it is opt-in
(``--write``); the usual way to refresh one section is ``--section`` and pasting its tables.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
from pathlib import Path

HERE = Path(__file__).resolve().parent
# $AVP_RESULTS_DIR reads another results folder (to preview a run in progress).
RESULTS_DIR = Path(os.environ.get("AVP_RESULTS_DIR", HERE / "results"))
COMMANDS = {
    "continual_omniglot": (
        "AVP_THREADS=1 python benchmarks/continual_omniglot.py --runs 5 --data-root ../shared/data"
    ),
    "continual_sine": "AVP_THREADS=1 python benchmarks/continual_sine.py --runs 5",
    "meta_training_speed": "python benchmarks/meta_training_speed.py --meta-batch 16 --threads 1",
    "alignment": "python benchmarks/alignment.py --data-root ../shared/data --threads 1 --fresh "
    "--depths 2,4,8",
    "compare_default": "python benchmarks/compare_default.py",
    "compare_all": "python benchmarks/compare_default.py --strategies FLP OML Naive EWC Replay "
    "ComplexSynapse GainModulation Naive+fa Naive+sa EWC+sa Replay+sa --seeds 0 1 2 "
    "--out benchmarks/results/compare_all.json",
    "distributed": "python benchmarks/distributed.py --repeats 3 --data-root ../shared/data",
    "plasticity_rules": "AVP_DATA_DIR=../shared/data python benchmarks/plasticity_rules.py",
    "contrastive": "OMP_NUM_THREADS=1 python benchmarks/contrastive.py --data-root ../shared/data",
    "standard_benchmarks": "python benchmarks/standard_benchmarks.py --sections split_mnist/class/online "
    "--strategies FLP Naive EWC SI LwF Replay Joint --seeds 0 1 2 3 4 --train-per-experience 1000 "
    "--data-root ../shared/data; python benchmarks/standard_benchmarks.py --step-overhead",
    "deploy_lr": "python benchmarks/deploy_lr.py --data-root ../shared/data",
    "deploy_lr_standard": "python benchmarks/deploy_lr.py --regime standard --scenarios split_mnist "
    "split_fashion_mnist --strategies OML Naive EWC --data-root ../shared/data",
}
# BioTorch's LeNet test errors (%), the floor for feedback alignment's gap to backprop.
BIOTORCH_FA_GAP = {"mnist": 1.7 - 0.91, "fashion_mnist": 13.06 - 9.2}
FIXED_FEEDBACK = ("fa", "usf", "frsf", "brsf", "dfa")


def load(name: str) -> dict | None:
    path = RESULTS_DIR / f"{name}.json"
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


def _pct(v: float | None) -> str:
    return "-" if v is None or v != v else f"{100 * v:.2f}"


def _gap(v: float | None, ref: float | None) -> str:
    return "-" if v is None or ref is None or v != v else f"{100 * (v - ref):+.2f}"


def alignment(d: dict) -> list[str]:
    acc, split = d["test_acc"], d.get("split_mnist_replay", {})
    noise = d.get("noise", {}).get("noisy", {})
    clean = d.get("noise", {}).get("clean", {})
    ratio = d.get("step_time_ratio", {})
    mn, fm = acc.get("mnist", {}), acc.get("fashion_mnist", {})
    c = d["config"]
    lines = [
        f"Conv net: {c['depth']} conv layers of {c['width']} channels (BatchNorm, ReLU) + linear; Adam "
        f"lr {c['forward_lr']} on forward weights, batch {c['batch']}, {c['epochs']} epochs (depth sweep "
        f"and noise: {c['sweep_epochs']}); feedback weights by AlignmentPlugin's defaults (Adam lr 1e-2); "
        f"seed {c['seed']}. Noise: update noise variance {c['noise']}. SplitMNIST: 5 experiences, 1 epoch "
        "each, Naive + Replay (500) + the rule, accuracy on all 10 classes at the end.",
        "",
        "| rule | MNIST | Δ BP | Fashion-MNIST | Δ BP | MNIST, noisy updates (Δ noise-free) "
        "| SplitMNIST + Replay | step time / BP |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for rule in mn:
        lines.append(
            f"| {rule} | {_pct(mn.get(rule))} | {_gap(mn.get(rule), mn.get('backprop'))} | "
            f"{_pct(fm.get(rule))} | {_gap(fm.get(rule), fm.get('backprop'))} | {_pct(noise.get(rule))} "
            f"({_gap(noise.get(rule), clean.get(rule))}) | "
            f"{_pct(split.get(rule))} | " + (f"{ratio[rule]:.2f}x" if rule in ratio else "-") + " |"
        )
    sweep = d.get("depth_sweep", {})
    if sweep:
        depths = sorted({int(k) for r in sweep.values() for k in r})
        bp = sweep.get("backprop", {})
        lines += [
            "",
            f"Depth sweep (Fashion-MNIST, {c['sweep_epochs']} epoch): test accuracy, and gap to backprop "
            "in points",
            "",
            "| rule | "
            + " | ".join(f"{k} conv" for k in depths)
            + " | "
            + " | ".join(f"Δ{k}" for k in depths)
            + " |",
            "|---|" + "---|" * (2 * len(depths)),
        ]
        for rule, r in sweep.items():
            lines.append(
                f"| {rule} | "
                + " | ".join(_pct(r.get(str(k))) for k in depths)
                + " | "
                + " | ".join(_gap(r.get(str(k)), bp.get(str(k))) for k in depths)
                + " |"
            )
    lines += ["", "Targets (issue #5):", ""] + [f"- {t}" for t in alignment_targets(d)]
    return lines


def alignment_targets(d: dict) -> list[str]:
    """Each target of the issue, checked against the numbers (met / NOT met)."""
    out = []
    acc = d["test_acc"]
    for rule, limit in (("sa", 1.0), ("aa", 1.0), ("ia", 3.0)):
        gaps = {
            ds: 100 * (acc[ds]["backprop"] - acc[ds][rule])
            for ds in ("mnist", "fashion_mnist")
            if rule in acc.get(ds, {}) and "backprop" in acc.get(ds, {})
        }
        if gaps:
            ok = all(g <= limit for g in gaps.values())
            detail = ", ".join(f"{ds} {g:.2f}" for ds, g in gaps.items())
            out.append(
                f"{rule} within {limit:g} point(s) of backprop: {'met' if ok else 'NOT met'} ({detail})"
            )
    fa_gaps = {ds: 100 * (acc[ds]["backprop"] - acc[ds]["fa"]) for ds in acc if "fa" in acc[ds]}
    if fa_gaps:
        ok = all(fa_gaps[ds] >= BIOTORCH_FA_GAP[ds] for ds in fa_gaps)
        detail = ", ".join(f"{ds} {g:.2f} vs BioTorch {BIOTORCH_FA_GAP[ds]:.2f}" for ds, g in fa_gaps.items())
        out.append(f"FA's gap at least BioTorch's LeNet gap: {'met' if ok else 'NOT met'} ({detail})")
    sweep = d.get("depth_sweep", {})
    if "fa" in sweep and "backprop" in sweep:
        depths = sorted(int(k) for k in sweep["fa"])
        gaps = [100 * (sweep["backprop"][str(k)] - sweep["fa"][str(k)]) for k in depths]
        grows = gaps[-1] > gaps[0]
        out.append(
            f"FA's gap grows with depth: {'met' if grows else 'NOT met'} ("
            + ", ".join(f"{k}: {g:.2f}" for k, g in zip(depths, gaps, strict=True))
            + ")"
        )
    ratio = d.get("step_time_ratio", {})
    if ratio:
        fixed = {r: v for r, v in ratio.items() if r in FIXED_FEEDBACK}
        learned = {r: v for r, v in ratio.items() if r not in FIXED_FEEDBACK and r != "backprop"}
        worst_fixed, worst_learned = max(fixed.values()), max(learned.values())
        out.append(
            f"FA / sign symmetry / DFA step time <= 1.5x backprop: "
            f"{'met' if worst_fixed <= 1.5 else 'NOT met'} (max {worst_fixed:.2f}x)"
        )
        out.append(
            f"learned-feedback step time <= 2x backprop: "
            f"{'met' if worst_learned <= 2.0 else 'NOT met'} (max {worst_learned:.2f}x)"
        )
    return out


def compare_default(d: dict) -> list[str]:
    """The no-argument ``compare``: wall time and final MSE per strategy, against issue #6's targets."""
    res = {k: v["final_mse"] for k, v in d["results"].items()}
    lines = [
        f"Wall time from scratch (meta-training FLP and OML, five strategies, files, plots, W&B offline): "
        f"**{d['seconds']:.0f} s** (target < 300 s: {'met' if d['seconds'] < 300 else 'NOT met'}).",
        "",
        "| strategy | final MSE (all 10 functions) |",
        "|---|---|",
        *(f"| {k} | {v:.3f} |" for k, v in res.items()),
        "",
    ]
    if {"FLP", "OML", "Naive"} <= set(res):
        well_below = max(res["FLP"], res["OML"]) <= 0.5 * res["Naive"]
        lines.append(
            f"FLP and OML well below Naive (at most half its MSE): {'met' if well_below else 'NOT met'} "
            f"(FLP {res['FLP'] / res['Naive']:.2f}x, OML {res['OML'] / res['Naive']:.2f}x Naive's MSE)."
        )
    return lines


def compare_all(d: dict) -> list[str]:
    """Every learner of the package in one ``compare`` on the default stream."""
    seeds = d["config"].get("seeds", [0])
    lines = [
        f"`{d['command']}`: {d['seconds']:.0f} s wall from a fresh clone (the shipped FLP and OML, the "
        "learners without a shipped file meta-trained in the job, then every strategy on "
        f"{len(seeds)} stream seeds). Final MSE on all 10 functions, mean ± "
        "std over the seeds; `<base>+<rule>` is the SGD strategy trained with that credit-assignment rule.",
        "",
        "| strategy | final MSE |",
        "|---|---|",
        *(
            f"| {k} | {v['final_mse']:.3f} ± {v.get('final_mse_std', 0.0):.3f} |"
            for k, v in d["results"].items()
        ),
    ]
    return lines


def distributed(d: dict) -> list[str]:
    """Episodes per second of 1 and 2 torchrun processes, the machine's own ceiling, and the target."""
    c, eps = d["config"], d["episodes_per_s"]
    lines = [
        f"{c['learner']} on {c['scenario']} ({c['scale']} preset), total meta-batch "
        f"{c['meta_batch_size_total']}, {c['steps']} meta-updates per run ({c['warmup_steps_not_timed']} "
        f"untimed), 1 thread per process, {c['backend']}; median of {c['repeats']} interleaved repeats.",
        "",
        "| setting | episodes/s (median) | runs |",
        "|---|---|---|",
    ]
    names = {
        "1": "1 process (per-episode seeds)",
        "2": "2 torchrun processes (per-episode seeds)",
        "1_one_stream": "1 process (one sampling stream)",
        "2_independent": "machine ceiling: 2 independent 1-process runs at once, half the meta-batch each",
    }
    for k, v in eps.items():
        runs = ", ".join(f"{x:.1f}" for x in d["episodes_per_s_all_runs"][k])
        lines.append(f"| {names.get(k, k)} | {v:.2f} | {runs} |")
    lines += [
        "",
        f"Scaling 2 vs 1 process: **{d['scaling']:.2f}x** (target >= 1.6x: "
        f"{'met' if d['scaling'] >= 1.6 else 'NOT met'}).",
    ]
    if "machine_ceiling" in d:
        lines.append(
            f"This machine's own ceiling for two 1-thread processes is {d['machine_ceiling']:.2f}x; the "
            f"distributed run reaches {100 * d['parallel_efficiency_vs_ceiling']:.0f} % of it."
        )
    if "load_average_1min_after_each_run" in d:
        loads = d["load_average_1min_after_each_run"]
        lines.append(f"1-minute load average during the runs: {min(loads):.1f} to {max(loads):.1f}.")
    return lines


def speed(d: dict) -> list[str]:
    lines = [
        "Small configuration (11-64-64-64-1, minibatches of 8, 400 steps, meta-batch 16):",
        "",
        "| batched (episodes/s) | per-episode loop (episodes/s) | ratio |",
        "|---|---|---|",
        f"| {d['batched_episodes_per_s']:.2f} | {d['loop_episodes_per_s']:.2f} | {d['ratio']:.2f}x |",
    ]
    return lines + (paper_speed(d["paper_config"]) if "paper_config" in d else [])


def paper_speed(pc: dict) -> list[str]:
    """The FLP authors' sine configuration (issue #16): every path, meta-batch and thread count."""
    cfg = pc["config"]
    names = {
        "loop": "per-episode loop, the authors' code's work",
        "loop_minimal": "per-episode loop, same math only",
        "batched": "batched, stored graph (`meta_gradient='stored'`)",
        "memory_lean": "batched, memory-lean (`meta_gradient='memory_lean'`)",
    }
    lines = [
        "",
        "The FLP authors' sine configuration (issue #16): MLP "
        f"{'-'.join(map(str, cfg['layer_sizes']))}, every layer plastic, Oja, {cfg['online_steps']} "
        f"online steps of {cfg['batch_size']}, "
        f"{cfg['gflop']:.0f} GFLOP of matmul per episode. Command: "
        "`python benchmarks/meta_training_speed.py --paper-only`; machine: " + cfg["machine"] + ".",
        "",
        "| threads | path | meta-batch | s / episode | episodes/s | CPU s / episode | episode MB "
        "| process peak MB |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for threads, block in pc["by_threads"].items():
        for path, name in names.items():
            for mb, r in block[path]["by_meta_batch"].items():
                if "s_per_episode" not in r:
                    if path == "batched":
                        lines.append(f"| {threads} | {name} | {mb} | not run: {r['skipped']} | | | | |")
                    continue
                lines.append(
                    f"| {threads} | {name} | {mb} | {r['s_per_episode']:.2f} | {r['episodes_per_s']:.3f} | "
                    f"{r['cpu_s_per_episode']:.2f} | {r['episode_mb']:.0f} | {r['peak_mb']:.0f} |"
                )
    mem = pc["memory_lean_peak_mb_by_steps"]
    lines += [
        "",
        "Memory-lean episode memory by online steps: "
        f"{', '.join(f'{k}: {v:.0f} MB' for k, v in mem.items())}. "
        f"At {pc['threads']} thread(s): {pc['speedup_vs_loop']:.2f}x the authors'-code loop, "
        f"{pc['speedup_vs_loop_minimal']:.2f}x the same-math loop; floor fraction {pc['floor_fraction']:.2f} "
        f"(matmul {pc['by_threads'][str(pc['threads'])]['matmul_gflops_32x300x300']['forward']:.0f} GFLOP/s "
        "at 32x300x300 in the same run).",
    ]
    return lines


def plasticity_rules(d: dict) -> list[str]:
    cfg = d["config"]
    lines = [
        f"Online accuracy on held-out Omniglot episodes ({cfg['omniglot']['ways']}-way, "
        f"{cfg['omniglot']['shots']} images per class learned one at a time, query accuracy after the "
        f"pass; evaluation alphabets), mean ± std over {cfg['eval_seeds']} seeds × {cfg['eval_episodes']} "
        "episodes. Every method meta-learns its coefficients on background episodes (backprop and FA: the "
        "pseudo-gradient's rate; learned: the ten-term pool with L1), starting from the rate with the lowest "
        "query cross-entropy on a grid (the learned rule from FA's). 'As read': the learned rule with only "
        "its surviving terms. 'Input signal': at the initial weights, how much of the last hidden "
        "layer's activity still depends on the input (std across samples over mean magnitude). 'Output "
        "layer only': no error reaches the hidden layers (zero feedback), so only the output layer learns, "
        "with its exact pseudo-gradient, on the random hidden features (rate picked on the same grid).",
        "",
        "| plastic layers | input signal | start rate (BP / FA) | backprop | feedback alignment "
        "| output layer only | learned rule | learned, as read | learned − FA |",
        "|---|---|---|---|---|---|---|---|---|",
    ]

    def row_cells(row: dict) -> str:
        chosen = (row.get("lr_grid") or {}).get("chosen", {})
        start = f"{chosen['backprop']:g} / {chosen['fa']:g}" if chosen else "-"
        signal = row.get("input_signal_by_layer")
        start = (f"{signal[-1]:.2f}" if signal else "-") + f" | {start}"
        cells = [_pm(row.get(m)) for m in ("backprop", "fa", "output_layer_only", "learned")]
        cells.append(_pm((row.get("learned") or {}).get("read_rule")))
        gap = row["learned"]["mean"] - row["fa"]["mean"] if "learned" in row and "fa" in row else None
        return f"{start} | " + " | ".join(cells) + f" | {_gap(gap, 0.0)} |"

    sweeps = {
        "omniglot": "",
        "mnist": ", MNIST episodes",
        "omniglot_he": ", He gain",
        "mnist_he": ", MNIST episodes, He gain",
        "emnist": ", EMNIST episodes",
        "emnist_he": ", EMNIST episodes, He gain",
    }
    for name, label in sweeps.items():
        for depth, row in sorted(d.get(name, {}).items(), key=lambda kv: int(kv[0])):
            lines.append(f"| {depth}{label} | {row_cells(row)}")
    if any(d.get(name) for name in ("omniglot_he", "mnist_he", "emnist_he")):
        lines += [
            "",
            "'He gain': the same sweep with every forward matrix drawn Xavier-uniform times "
            f"√2 (`init_gain={cfg.get('he_gain', 2**0.5):.4f}`; the feedback matrices keep the paper's "
            "Xavier scale), the usual gain for ReLU-like units; the "
            "paper's Xavier init leaves the 10-layer net almost no input signal at its last hidden layer. "
            "Same episodes, seeds, grids and budgets; its learned rules are meta-trained under that init "
            "(depth 10 from the depth-5 He rule).",
        ]
    zero_shot = [
        f"{name} {_pm(row.get('paper_depth_rule_zero_shot'))}"
        for name in sweeps
        for depth, row in (d.get(name) or {}).items()
        if row.get("paper_depth_rule_zero_shot")
    ]
    if zero_shot:
        lines += [
            "",
            "Deeper than the paper's depth, the learned rule's meta-training starts from the depth-5 rule. "
            "That rule run unchanged on the depth-10 net, before any meta-training there: "
            + ", ".join(zero_shot)
            + ".",
        ]
    retries = [
        f"{name} depth {depth}: {_pm(row['learned_low_meta_lr'])} % "
        f"(final meta-loss {row['learned_low_meta_lr']['final_meta_loss']:.3f}; at "
        f"{cfg['meta_lr']:g}: {_pm(row.get('learned'))} %, {row['learned']['final_meta_loss']:.3f})"
        for name in sweeps
        for depth, row in sorted((d.get(name) or {}).items(), key=lambda kv: int(kv[0]))
        if (row.get("learned_low_meta_lr") or {}).get("done") and "learned" in row
    ]
    if retries:
        lines += [
            "",
            f"The same deeper-than-paper meta-training at meta-lr {cfg.get('deep_retry_meta_lr', 0):g} "
            f"instead of {cfg['meta_lr']:g} (same start, episodes and budget; ln 5 = {math.log(5):.3f} is "
            "the cross-entropy of uniform outputs): " + "; ".join(retries) + ".",
        ]
    align_rows = [
        (name, depth, row)
        for name in sweeps
        for depth, row in sorted((d.get(name) or {}).items(), key=lambda kv: int(kv[0]))
        if all("alignment" in (row.get(m) or {}) for m in ("fa", "learned"))
    ]
    if align_rows:

        def hidden(row: dict, method: str, key: str) -> str:
            # hidden layers only (the output layer's error is exact for every rule), nearest the output first
            values = list(reversed(row[method]["alignment"][key][:-1]))
            if values and all(math.isnan(v) for v in values):
                return "diverged"
            return " / ".join(f"{v:.2f}" for v in values)

        lines += [
            "",
            "Alignment with backprop during the online pass (paper Fig. 4c reads its arccos as an angle): "
            "the mean cosine, over the steps of one held-out seed's episodes, between the error each hidden "
            "layer receives and backprop's, and between the rule's whole update and backprop's SGD step; "
            "hidden layers from the output down. Backprop is 1 everywhere.",
            "",
            "| episodes, plastic layers | teaching signal, FA | teaching signal, learned | update, learned |",
            "|---|---|---|---|",
        ]
        for name, depth, row in align_rows:
            lines.append(
                f"| {name}, {depth} | {hidden(row, 'fa', 'teaching_signal')} "
                f"| {hidden(row, 'learned', 'teaching_signal')} | {hidden(row, 'learned', 'update')} |"
            )
    if d.get("formula"):
        lines += ["", f"Learned rule at the paper's depth (5): `{d['formula']}`"]
    if d.get("surviving_terms"):
        lines += [f"Terms above 5 % of the largest: {', '.join(d['surviving_terms'])}."]
    cont = d.get("continual", {})
    methods = ("backprop", "fa", "learned", "learned_read", "FLP", "OML")
    if cont:
        lines += ["", "| continual stream (final accuracy) | " + " | ".join(methods) + " |"]
        lines.append("|---|" + "---|" * len(methods))
        for stream, sec in cont.items():
            lines.append(f"| {stream} | " + " | ".join(_pm(sec.get(m)) for m in methods) + " |")
    st = d.get("step_time")
    if st:
        lines += [
            "",
            f"One online step of the learned rule: {st['rule_step_s'] * 1e6:.0f} µs; a backprop SGD step "
            f"on the same network: {st['backprop_sgd_step_s'] * 1e6:.0f} µs; ratio {st['ratio']:.2f}"
            + (
                f" (the generic, unfused step: {st['generic_rule_step_s'] * 1e6:.0f} µs, ratio "
                f"{st['generic_ratio']:.2f})."
                if "generic_ratio" in st
                else "."
            ),
        ]
    t = {k: v for k, v in d.get("targets", {}).items() if isinstance(v, bool)}
    if t:
        lines += ["", "Targets: " + ", ".join(f"{k} = {v}" for k, v in t.items()) + "."]
    return lines


def _pm(r: dict | None) -> str:
    """``mean ± std`` in percent, or why there is none."""
    if not r or r.get("mean") is None:
        return (r or {}).get("skipped", "-") if r else "-"
    extra = f" ({r['diverged_seeds']} diverged)" if r.get("diverged_seeds") else ""
    if r.get("diverged_episodes"):
        extra += f" ({r['diverged_episodes']}/{r['episodes']} episodes diverged)"
    return f"{100 * r['mean']:.1f} ± {100 * r['std']:.1f}{extra}"


def contrastive(d: dict) -> list[str]:
    lines: list[str] = []
    g = d.get("gradient_quality")
    if g:
        lines += [
            "Gradient quality: cosine to the implicit (CG) meta-gradient, complex synapse on few-shot sine, "
            "by beta (rows) and free/nudged-phase tolerance (columns); `nc`: a phase did not converge.",
            "",
        ]
        for variant in ("one_sided", "symmetric"):
            v = g[variant]
            by_beta = v["by_beta"]
            tols = list(next(iter(by_beta.values())))
            lines += [
                f"**{variant}** (best {v['best_cosine']:.6f} at beta {v['best_at']['beta']:g}, "
                f"tol {v['best_at']['tol']:g})",
                "",
                "| beta | " + " | ".join(f"tol {t}" for t in tols) + " |",
                "|---|" + "---|" * len(tols),
            ]
            for beta, row in by_beta.items():
                cells = [f"{row[t]['cosine']:.4f}" if "cosine" in row[t] else "nc" for t in tols]
                lines.append(f"| {beta} | " + " | ".join(cells) + " |")
            lines.append("")
    mem, sec = d.get("memory_bytes"), d.get("seconds_per_meta_step")
    if mem:
        steps = list(mem["contrastive"])
        lines += ["| inner steps | " + " | ".join(steps) + " |", "|---|" + "---|" * len(steps)]
        for method, row in mem.items():
            lines.append(
                f"| peak memory held for backward, {method} (MiB) | "
                + " | ".join(f"{v / 2**20:.1f}" for v in row.values())
                + " |"
            )
        for method, row in (sec or {}).items():
            lines.append(
                f"| seconds per meta-step, {method} | " + " | ".join(f"{v:.2f}" for v in row.values()) + " |"
            )
        lines.append("")
    cont = d.get("continual") or {}
    if "sine" in cont:
        cells = ", ".join(
            f"{m} {v['final_mse']['mean']:.3f}"
            for m, v in cont["sine"].items()
            if isinstance(v, dict) and "final_mse" in v
        )
        lines.append(f"Continual sine, final MSE on the 5 problems of issue #2: {cells}.")
    if "omniglot" in cont:
        n = str(cont["omniglot"]["settings"]["classes"])
        cells = ", ".join(
            f"{m} {_pm(v.get(n))} %" for m, v in cont["omniglot"].items() if isinstance(v, dict) and n in v
        )
        lines.append(f"Continual Omniglot, accuracy after {n} classes: {cells}.")
    if cont:
        lines.append("")
    cfg = d.get("config") or {}
    inner, factor = cfg.get("fewshot_inner") or {}, cfg.get("fewshot_steps_factor") or {}
    names = {"sgd": "plain SGD", "nesterov": "SGD Nesterov 0.9"}
    for setting, r in (d.get("fewshot_omniglot") or {}).items():
        lines += [
            f"Few-shot Omniglot {setting}: the same conv complex synapse, meta-batch (8 tasks) and inner "
            "budget (20 steps); each variant is tested with its own inner loop on 200 evaluation-class "
            "tasks. Meta-training time: median seconds per meta-update x updates, one thread.",
            "",
            "| meta-gradient | inner loop | meta-updates | meta-training time | accuracy | 95 % CI | "
            "before meta-training |",
            "|---|---|---|---|---|---|---|",
        ]
        for m, v in r.items():
            if isinstance(v, dict) and "mean" in v:
                est = "unrolled backprop" if m.startswith("unrolled") else "contrastive (symmetric)"
                updates = cfg.get("meta_steps", 0) * factor.get(m, 1)
                minutes = v["seconds_per_meta_step"] * updates / 60
                loop = names.get(inner.get(m), inner.get(m, "?"))
                acc, ci, before = 100 * v["mean"], 100 * v["ci95"], 100 * v["before_meta_training"]
                lines.append(
                    f"| {est} | {loop} | {updates} | {minutes:.0f} min | {acc:.1f} % | ± {ci:.1f} | "
                    f"{before:.1f} % |"
                )
        lines.append("")
        if "gap_points" in r:
            same = r.get("gap_points_same_inner_loop")
            lines.append(
                f"Unrolled (plain SGD, the MAML-style baseline) − contrastive: {r['gap_points']:+.1f} points"
                + (f"; with the same plain-SGD inner loop: {same:+.1f} points." if same is not None else ".")
            )
    return lines


def paired_against(table: dict, name: str, reference: str = "Naive") -> str:
    """``name``'s final accuracy minus ``reference``'s, paired by seed (the same stream order and class
    split), as ``mean ± std`` in points over the seeds; "-" for the reference itself, when it is absent, or
    when the two rows' runs do not line up (another number of seeds, or a diverged run's NaN). Pairing
    removes the spread that the stream order gives every learner alike, which the two rows' own
    ``mean ± std`` keep."""
    if name == reference or reference not in table:
        return "-"
    mine, theirs = table[name]["accuracy"]["runs"], table[reference]["accuracy"]["runs"]
    if not mine or len(mine) != len(theirs):
        return "-"
    differences = [a - b for a, b in zip(mine, theirs, strict=True)]
    if any(math.isnan(x) for x in differences):
        return "-"
    return f"{100 * statistics.fmean(differences):+.1f} ± {100 * statistics.pstdev(differences):.1f}"


def standard_benchmarks(d: dict) -> list[str]:
    """One table per ``<scenario>/<setting>/<regime>`` section: accuracy, forgetting and BWT (percent,
    mean ± std over seeds), the accuracy's margin over Naive paired by seed, diverged runs; then the online
    step's overhead."""
    out = []
    sections = [("results", "config", s, t) for s, t in d.get("results", {}).items()]
    sections += [("long_stream", "long_stream_config", s, t) for s, t in d.get("long_stream", {}).items()]
    for key, config_key, section, table in sections:
        cfg = d.get(config_key, {}).get(section, {})
        stream = cfg.get("stream", {})
        per = stream.get("train_per_experience")
        out += [
            f"**{section}**{' (long stream)' if key == 'long_stream' else ''} "
            f"({len(cfg.get('seeds', []))} seeds; "
            f"{'every training image' if per is None else f'{per} training images per experience'}; "
            f"Replay buffer {stream.get('mem_size')}): final accuracy on the test images of all classes "
            "seen, average forgetting and BWT, in percent; the accuracy's margin over Naive paired by seed "
            "(the same stream order), in points.",
            "",
            "| strategy | accuracy | forgetting | BWT | accuracy − Naive, paired | diverged runs |",
            "|---|---|---|---|---|---|",
        ]
        for name, r in table.items():
            cells = [
                _pm({k: v for k, v in r[key].items() if k != "runs"})
                for key in ("accuracy", "forgetting", "bwt")
            ]
            if r["diverged_runs"] == len(r["accuracy"]["runs"]):
                cells = ["diverged"] * 3
            cells.append(paired_against(table, name))
            out.append(f"| {name} | {' | '.join(cells)} | {r['diverged_runs']} |")
        out.append("")
    so = d.get("step_overhead")
    if so:
        out.append(
            f"Online FLP step through the Avalanche strategy: {so['strategy_ms']:.2f} ms against "
            f"{so['learn_ms']:.2f} ms for `PlasticModel.learn` alone (`step_overhead` {so['ratio']:.2f}x, "
            f"{so['steps']} SplitMNIST steps; {so['machine']})."
        )
    return out


def deploy_lr(d: dict) -> list[str]:
    """One table per scenario: each strategy's final accuracy (percent) at every swept SGD rate on the
    class-incremental validation stream of the file's regime, its meta-trained or default rate and the
    best one; "refused" where the strategy rejects the rate (past its stability bound)."""
    cfg = d.get("config", {})
    default_seeds = [cfg.get("validation_seed")]

    def seeds_of(row: dict) -> list:
        return row.get("validation_seeds", default_seeds)

    out = []
    for scenario, table in d.get("results", {}).items():
        rates = sorted(
            {float(r) for row in table.values() for r in [*row["accuracy"], *row.get("rejected", {})]}
        )
        per = cfg.get("train_per_experience", {}).get(scenario)
        mixed = any(seeds_of(r) != default_seeds for r in table.values())
        out += [
            f"**{scenario}** (class-incremental {cfg.get('regime', 'online')}, validation seed "
            f"{cfg.get('validation_seed')}"
            f"{' unless a row names its seeds' if mixed else ''}, "
            f"{'every training image' if per is None else f'{per} training images per experience'}): "
            "final accuracy in percent by SGD rate; the best per strategy in bold.",
            "",
            f"| strategy | meta-trained / default rate | best rate | {' | '.join(f'{r:g}' for r in rates)} |",
            f"|---|---|---|{'---|' * len(rates)}",
        ]
        for name, row in table.items():
            cells = []
            for r in rates:
                acc = row["accuracy"].get(f"{r:g}")
                cell = (
                    "refused"
                    if f"{r:g}" in row.get("rejected", {})
                    else ""
                    if acc is None
                    else f"{100 * acc:.1f}"
                )
                cells.append(f"**{cell}**" if acc is not None and r == row["best_lr"] else cell)
            deployed = row.get("deployed_lr")
            label = name
            if seeds_of(row) != default_seeds:  # several validation streams: the mean over them
                label = f"{name} (mean of seeds {', '.join(str(x) for x in seeds_of(row))})"
            out.append(
                f"| {label} | {'-' if deployed is None else f'{deployed:g}'} | {row['best_lr']:g} | "
                f"{' | '.join(cells)} |"
            )
        out.append("")
    return out


# (results file, section title, formatter), in the order of RESULTS.md
SECTIONS = (
    ("continual_omniglot", "Continual Omniglot (OML protocol)", omniglot),
    ("continual_sine", "Continual sine regression", sine),
    ("meta_training_speed", "FLP meta-training throughput", speed),
    ("alignment", "Credit assignment without weight symmetry (issue #5)", alignment),
    (
        "compare_default",
        "The main job: `avalanche-plasticity compare` with no arguments (issue #6)",
        compare_default,
    ),
    ("compare_all", "Every learner side by side in `compare` (issues #4, #5, #6)", compare_all),
    ("distributed", "Distributed meta-training with torchrun (issue #6)", distributed),
    (
        "plasticity_rules",
        "Meta-learned plasticity rules on fixed random feedback (issue #3)",
        plasticity_rules,
    ),
    ("contrastive", "The contrastive meta-learning rule (issue #4)", contrastive),
    ("standard_benchmarks", "Standard continual-learning benchmarks (issue #15)", standard_benchmarks),
    ("deploy_lr", "SGD rates on the class-incremental online streams (issue #15)", deploy_lr),
    ("deploy_lr_standard", "SGD rates on the class-incremental standard streams (issue #15)", deploy_lr),
)


def main(argv: list[str] | None = None) -> None:
    names = [name for name, _, _ in SECTIONS]
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    mode = p.add_mutually_exclusive_group(required=True)
    mode.add_argument("--section", choices=names, help="print one section's tables and write nothing")
    mode.add_argument("--write", action="store_true", help="regenerate the whole of RESULTS.md")
    args = p.parse_args(argv)
    if args.section:
        fmt = {name: f for name, _, f in SECTIONS}[args.section]
        print("\n".join(fmt(load(args.section))))
        return
    out = [
        "# Benchmark results",
        "",
        "Written by `python benchmarks/summarize.py` from `benchmarks/results/*.json`; each section names "
        "the command and machine that produced it. Accuracies are percentages of the test images of all "
        "classes seen (mean ± std over runs with different class orders / problems).",
        "",
    ]
    for name, title, fmt in SECTIONS:
        d = load(name)
        if d is None or (name == "alignment" and not d.get("test_acc")):
            continue
        header = [f"## {title}", "", f"Command: `{COMMANDS[name]}`  ", f"Machine: {d['machine']}"]
        if name in ("continual_omniglot", "continual_sine"):
            header[-1] += "  "
            header.append(
                f"Wall time: {d.get('seconds', 0) / 60:.1f} min "
                "(evaluation; meta-training checkpoints reused)"
            )
        out += [*header, "", *fmt(d), ""]
    notes = HERE / "NOTES.md"
    if notes.exists():
        out += [notes.read_text()]
    (HERE / "RESULTS.md").write_text("\n".join(out))
    print((HERE / "RESULTS.md").read_text())


if __name__ == "__main__":
    main()
