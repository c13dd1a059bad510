"""Remake the meta-trained learners shipped in ``avalanche_plasticity/pretrained/`` and their manifest.

For every target ``<learner>/<scenario>/<scale>`` (default: the learners that ``avalanche-plasticity
compare`` deploys with no arguments, i.e. the default scenario's learners at its default scale):

1. meta-train its preset at meta seed 0 with :func:`avalanche_plasticity.experiments.meta_trained`
   (resumes the checkpoint in ``--checkpoint-dir``; a finished one is just loaded), several targets side
   by side with ``--jobs`` (one thread each);
2. write a slim copy of the final checkpoint (kind, config, weights, meta config and provenance; no
   optimiser state or history) to ``avalanche_plasticity/pretrained/<scenario>_<learner>_<scale>.pt``
   (at most 2 MB);
3. measure its figure as ``compare`` deploys it: the final metric on the default stream, seed 0, and on a
   short stream (``check``, which ``tests/test_pretrained.py`` reproduces);
4. record the file, its SHA-256, the preset's config digest, the command and the figures in
   ``manifest.json`` (rewritten atomically after each target).

It is resumable: a target whose manifest entry still matches its preset and file is skipped (``--force``
remakes it), and meta-training resumes from its checkpoint.

    python scripts/make_pretrained.py                               # sine: FLP and OML at cpu
    python scripts/make_pretrained.py --targets OML/omniglot/cpu --checkpoint-dir benchmarks/checkpoints
    python scripts/make_pretrained.py --omniglot --checkpoint-dir benchmarks/checkpoints  # + Omniglot's
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch

from avalanche_plasticity import pretrained, registry
from avalanche_plasticity.checkpoint import write_bytes_atomic
from avalanche_plasticity.configs import default_scale, default_strategies, presets
from avalanche_plasticity.experiments import checkpoint_name, load_trained, meta_train_parallel, meta_trained

MAX_BYTES = 2 * 1024 * 1024
CHECK_STREAMS = {
    "sine": {"batches_per_function": 10},
    "omniglot": {"num_classes": 10},
}  # the short stream of each scenario's check figure
OMNIGLOT_OPT_IN = ("ComplexSynapse", "GainModulation")  # opt-in in compare, shipped all the same


def default_targets(scenario: str | None = None, *, opt_in: tuple[str, ...] = ()) -> list[str]:
    """The learners that ``compare`` deploys by default on ``scenario`` (default: the no-argument
    ``compare``'s), plus the opt-in ones named in ``opt_in``: ``<learner>/<scenario>/<scale>``."""
    scenario = scenario or registry.default_scenario()
    scale = default_scale(scenario)
    shipped = presets(scenario, scale)
    names = [*default_strategies(scenario, scale), *opt_in]
    return [pretrained.key(n, scenario, scale) for n in names if n in shipped]


def is_current(name: str, scenario: str, scale: str, folder: Path) -> bool:
    """Whether the manifest entry of a target matches its preset and its file its hash."""
    e = pretrained.entry(name, scenario, scale, folder)
    if e is None or e["config_digest"] != pretrained.config_digest(presets(scenario, scale)[name]):
        return False
    try:
        pretrained.verified_path(name, scenario, scale, folder)
    except pretrained.PretrainedError:
        return False
    return True


def make(target: str, args: argparse.Namespace, folder: Path) -> dict:
    """Slim copy, hash, digest and figures of one meta-trained target; returns its manifest entry."""
    name, scenario, scale = target.split("/")
    preset = presets(scenario, scale)[name]
    ckpt = Path(args.checkpoint_dir) / checkpoint_name(scenario, scale, preset, pretrained.META_SEED)
    meta_trained(
        scenario, name, scale=scale, checkpoint_dir=args.checkpoint_dir, root=args.data_root, progress=False
    )  # loads the finished checkpoint (meta-trains here if --jobs did not)
    command = (
        f"avalanche-plasticity meta-train --scenario {scenario} --learner {name} --scale {scale} "
        f"--seed {pretrained.META_SEED}; python scripts/make_pretrained.py --targets {target}"
    )
    file = f"{scenario}_{name}_{scale}.pt"
    pretrained.slim_copy(ckpt, folder / file, made_by=command, meta_checkpoint=ckpt.name)
    size = (folder / file).stat().st_size
    if size > MAX_BYTES:
        sys.exit(f"{folder / file} is {size} bytes, over the {MAX_BYTES} allowed")
    learner = load_trained(folder / file)
    figure = pretrained.measure_figure(name, scenario, scale, learner, root=args.data_root)
    check = CHECK_STREAMS.get(scenario)
    if check is not None:
        short = pretrained.measure_figure(name, scenario, scale, learner, stream=check, root=args.data_root)
        figure["check"] = {"stream_settings": check, "value": short["value"], "stream": short["stream"]}
    return {
        "file": file,
        "sha256": pretrained.file_sha256(folder / file),
        "config_digest": pretrained.config_digest(preset),
        "command": command,
        "figure": figure,
        "bytes": size,
        "meta_steps": preset.meta.steps,
        "meta_seed": pretrained.META_SEED,
        "made": time.strftime("%Y-%m-%d"),
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument(
        "--targets", nargs="+", default=None, help="<learner>/<scenario>/<scale> (default: compare's)"
    )
    p.add_argument("--checkpoint-dir", default="checkpoints", help="meta-training checkpoints (resumed)")
    p.add_argument("--folder", default=str(pretrained.FOLDER), help="where the shipped files and manifest go")
    p.add_argument("--jobs", type=int, default=2, help="meta-train this many targets side by side")
    p.add_argument("--data-root", default=None)
    p.add_argument("--force", action="store_true", help="remake targets whose entry is current")
    p.add_argument(
        "--omniglot",
        action="store_true",
        help="also the learners compare deploys on Omniglot (and the MNIST-family streams), the opt-in "
        f"{' and '.join(OMNIGLOT_OPT_IN)} included",
    )
    args = p.parse_args()
    torch.set_num_threads(1)
    folder = Path(args.folder)
    targets = args.targets or default_targets()
    if args.omniglot:
        extra = default_targets("omniglot", opt_in=OMNIGLOT_OPT_IN)
        targets = [*targets, *(t for t in extra if t not in targets)]
    todo = [t for t in targets if args.force or not is_current(*t.split("/"), folder)]
    for t in sorted(set(targets) - set(todo)):
        print(f"{t}: current, skipped")
    jobs = []
    for t in todo:
        name, scenario, scale = t.split("/")
        preset = presets(scenario, scale)[name]
        jobs.append(
            dict(
                scenario=scenario,
                name=name,
                scale=scale,
                preset=preset,
                checkpoint_dir=args.checkpoint_dir,
                root=args.data_root,
                seed=pretrained.META_SEED,
            )
        )
    if args.jobs > 1 and len(jobs) > 1:
        meta_train_parallel(jobs, args.jobs)
    for t in todo:
        entry = make(t, args, folder)
        manifest = pretrained.manifest(folder)
        manifest[t] = entry
        text = json.dumps(dict(sorted(manifest.items())), indent=2) + "\n"
        write_bytes_atomic(text.encode(), folder / pretrained.MANIFEST)
        print(
            f"{t}: {entry['file']} sha256 {entry['sha256'][:12]} {entry['figure']['metric']} "
            f"{entry['figure']['value']:.4g}"
        )


if __name__ == "__main__":
    main()
