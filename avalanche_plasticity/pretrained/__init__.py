"""Meta-trained learners shipped with the package, loaded by name and checked against their hash.

``manifest.json`` beside this module maps ``"<learner>/<scenario>/<scale>"`` to ``{"file", "sha256",
"config_digest", "command", "figure"}``: the slim checkpoint (learner kind, config and weights, plus where it
came from), its SHA-256, the digest of the preset it was meta-trained from (:func:`config_digest`), the
command that made it and its recorded result. ``scripts/make_pretrained.py`` remakes them all.

    from avalanche_plasticity.pretrained import load_pretrained
    from avalanche_plasticity.strategies import FLP

    strategy = FLP(learner=load_pretrained("FLP", "sine"), train_mb_size=8)   # the shipped sine/cpu FLP

``avalanche-plasticity compare`` deploys a shipped learner instead of meta-training when the preset it would
meta-train has the same digest and the meta seed is 0 (:func:`shipped_learner`); ``--meta-train`` turns
that off.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from pathlib import Path
from typing import Any

from ..checkpoint import CheckpointError, load_checkpoint, save_atomic

__all__ = [
    "FOLDER",
    "PretrainedError",
    "available",
    "config_digest",
    "entry",
    "file_sha256",
    "load_pretrained",
    "manifest",
    "measure_figure",
    "shipped_learner",
    "slim_copy",
    "verified_path",
]

FOLDER = Path(__file__).resolve().parent
MANIFEST = "manifest.json"
META_SEED = 0  # the meta-training seed of every shipped learner


class PretrainedError(CheckpointError):
    """A shipped learner is unknown, missing, corrupt or does not match its recorded hash."""


def key(learner: str, scenario: str, scale: str) -> str:
    """The manifest key ``"<learner>/<scenario>/<scale>"``."""
    return f"{learner}/{scenario}/{scale}"


def manifest(folder: str | Path | None = None) -> dict[str, dict[str, Any]]:
    """The manifest of the learners shipped in ``folder`` (empty if there is none)."""
    path = Path(folder or FOLDER) / MANIFEST
    if not path.is_file():
        return {}
    return json.loads(path.read_text())


def available(folder: str | Path | None = None) -> list[str]:
    """The shipped learners' keys, ``"<learner>/<scenario>/<scale>"``."""
    return sorted(manifest(folder))


def entry(
    learner: str, scenario: str, scale: str = "cpu", folder: str | Path | None = None
) -> dict[str, Any] | None:
    """The manifest entry of a shipped learner, or None when there is none."""
    return manifest(folder).get(key(learner, scenario, scale))


#: ``MetaTrainConfig`` fields added since the first learners were shipped; at their defaults they leave
#: meta-training as it was.
LATER_META_FIELDS = ("on_diverged",)


def config_digest(preset: Any) -> str:
    """SHA-256 (first 16 hex digits) of a preset's learner, learner config, meta-training config (all but
    its seed) and episode source: a preset changed by ``--set`` (or by an edit of its catalog entry) gets
    another digest, so a shipped learner is only deployed for the settings it was meta-trained with.
    Meta-training fields added after learners were shipped (:data:`LATER_META_FIELDS`) count only when
    they differ from their default, which is the behaviour the shipped learners were made with."""
    defaults = {f.name: f.default for f in dataclasses.fields(preset.meta)}
    meta = {
        k: v
        for k, v in dataclasses.asdict(preset.meta).items()
        if k != "seed" and not (k in LATER_META_FIELDS and v == defaults.get(k))
    }
    settings = {
        "learner": preset.learner,
        "learner_config": dataclasses.asdict(preset.learner_config),
        "meta": meta,
        "source": preset.source,
    }
    text = json.dumps(settings, sort_keys=True, default=repr)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def file_sha256(path: str | Path) -> str:
    """The SHA-256 of a file's bytes (hex)."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def verified_path(learner: str, scenario: str, scale: str = "cpu", folder: str | Path | None = None) -> Path:
    """The file of a shipped learner, after checking its SHA-256 against the manifest.

    :raises PretrainedError: no such shipped learner, a missing file, or a hash mismatch (naming the file,
        the expected and the actual hash).
    """
    e = entry(learner, scenario, scale, folder)
    if e is None:
        shipped = ", ".join(available(folder)) or "none"
        raise PretrainedError(f"no shipped learner {key(learner, scenario, scale)!r}; shipped: {shipped}")
    path = Path(folder or FOLDER) / e["file"]
    if not path.is_file():
        raise PretrainedError(f"shipped learner file {path} is missing (reinstall the package)")
    actual = file_sha256(path)
    if actual != e["sha256"]:
        raise PretrainedError(
            f"shipped learner file {path} does not match its manifest: expected sha256 {e['sha256']}, got "
            f"{actual} (a corrupt or replaced file: reinstall the package, or remake it with "
            f"scripts/make_pretrained.py)"
        )
    return path


def load_pretrained(
    learner: str, scenario: str, scale: str = "cpu", *, device: Any = "cpu", folder: str | Path | None = None
) -> Any:
    """The shipped meta-trained ``learner`` of ``scenario`` at ``scale``, its hash verified, ready for the
    learner's strategy (e.g. ``FLP(learner=load_pretrained("FLP", "sine"))``).

    :raises PretrainedError: unknown, missing, corrupt, or a hash mismatch.
    """
    from ..experiments import load_trained

    path = verified_path(learner, scenario, scale, folder)
    try:
        return load_trained(path).to(device)
    except CheckpointError as err:
        raise PretrainedError(f"shipped learner {key(learner, scenario, scale)}: {err}") from err


def shipped_learner(
    scenario: str, scale: str, preset: Any, meta_seed: int = 0, folder: str | Path | None = None
) -> tuple[Any, str] | None:
    """``(learner, description)`` of the shipped learner meta-trained from exactly ``preset`` (same
    :func:`config_digest`) at meta seed ``meta_seed``, or None when there is none (then meta-train).

    :raises PretrainedError: a matching entry whose file is missing or fails its hash check.
    """
    e = entry(preset.learner, scenario, scale, folder)
    if e is None or meta_seed != META_SEED or e["config_digest"] != config_digest(preset):
        return None
    learner = load_pretrained(preset.learner, scenario, scale, folder=folder)
    return learner, f"shipped {preset.learner} ({scenario}/{scale}, sha256 {e['sha256'][:12]})"


def slim_copy(checkpoint: str | Path, out: str | Path, **metadata: Any) -> None:
    """Write the learner of a meta-training checkpoint without its optimiser state, random state, history
    and the tensors its learner does not save: ``{"kind", "learner_config", "state_dict", "meta_config",
    "step", "metadata"}``, which :func:`.experiments.load_trained` and the registered loaders read.
    ``metadata`` joins the checkpoint's.
    """
    from ..experiments import load_trained

    ckpt = load_checkpoint(checkpoint)
    saved = set(load_trained(checkpoint).state_dict())  # what the learner saves (e.g. no fixed strengths)
    slim = {
        "kind": ckpt["kind"],
        "learner_config": ckpt["learner_config"],
        "state_dict": {
            k: v.detach().clone().contiguous() for k, v in ckpt["state_dict"].items() if k in saved
        },
        "meta_config": ckpt.get("meta_config"),
        "step": ckpt.get("step"),
        "metadata": {**ckpt.get("metadata", {}), **metadata},
    }
    save_atomic(slim, out)


def measure_figure(
    learner: str,
    scenario: str,
    scale: str,
    model: Any,
    stream: dict[str, Any] | None = None,
    root: str | Path | None = None,
) -> dict[str, Any]:
    """A shipped learner's figure: ``model`` deployed as ``compare`` deploys it, on the scenario's default
    stream (or with the :class:`.configs.StreamConfig` settings ``stream``), seed 0:
    ``{"metric": "final_<metric>", "value", "stream_seed", "stream"}``. ``root``: the data root of a
    scenario read from files (default ``$AVP_DATA_DIR``)."""
    from ..configs import StreamConfig
    from ..experiments import run_comparison
    from ..registry import scenario_spec

    comparison = run_comparison(
        scenario,
        strategies=[learner],
        scale=scale,
        stream=StreamConfig(**(stream or {})),
        learners={learner: model},
        progress=False,
        shipped=False,
        root=root,
    )
    run = comparison.runs[0]
    return {
        "metric": f"final_{scenario_spec(scenario).metric}",
        "value": run.final,
        "stream_seed": run.seed,
        "stream": run.config["stream"],
    }
