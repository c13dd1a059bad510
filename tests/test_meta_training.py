"""Meta-training lowers held-out loss; a killed run resumes to the same meta-parameters."""

import pytest
import torch

from avalanche_plasticity.checkpoint import CheckpointError
from avalanche_plasticity.flp import FLPConfig, FLPLearner
from avalanche_plasticity.meta_learning import MetaTrainConfig, load_learner, meta_loss, meta_train
from avalanche_plasticity.oml import OMLConfig, OMLLearner
from avalanche_plasticity.tasks import EpisodeBatch, SineTaskSource

SMALL_SINE = dict(functions_per_episode=3, batches_per_function=5, batch_size=8, query_per_function=16)


def small_flp():
    return FLPLearner(FLPConfig(layer_sizes=(4, 16, 16, 1), init_plasticity=0.0), seed=0)


def small_oml():
    return OMLLearner(OMLConfig(rln_sizes=(4, 16), pln_sizes=(16, 16, 1), inner_lr=0.01), seed=0)


@pytest.mark.parametrize("make,lrs", [(small_flp, {"plasticity": 1e-4}), (small_oml, {})])
def test_short_meta_training_on_sine_lowers_held_out_mse(make, lrs):
    torch.manual_seed(0)
    learner = make()
    source = SineTaskSource(**SMALL_SINE)
    held_out = SineTaskSource(**SMALL_SINE, pool_seed=99).sample(64, torch.Generator().manual_seed(1))
    with torch.no_grad():
        before = meta_loss(learner, held_out).item()
    meta_train(
        learner, source, MetaTrainConfig(steps=60, meta_batch_size=8, default_lr=3e-3, lr=lrs), progress=False
    )
    with torch.no_grad():
        after = meta_loss(learner, held_out).item()
    assert after < 0.9 * before, (before, after)


def test_flp_learns_to_use_plasticity_on_sine():
    """The online rule itself must help: after meta-training, MSE after the trajectory beats the same
    learner with its plasticity switched off."""
    learner = small_flp()
    meta_train(
        learner,
        SineTaskSource(**SMALL_SINE),
        MetaTrainConfig(steps=60, meta_batch_size=8, default_lr=3e-3, lr={"plasticity": 1e-4}),
        progress=False,
    )
    held_out = SineTaskSource(**SMALL_SINE, pool_seed=99).sample(64, torch.Generator().manual_seed(1))
    with torch.no_grad():
        plastic = meta_loss(learner, held_out).item()
        for r in learner.plasticity_rates:
            r.zero_()
        frozen = meta_loss(learner, held_out).item()
    assert plastic < frozen, (plastic, frozen)


def test_tiny_omniglot_meta_training_lowers_held_out_loss(omniglot_root):
    from avalanche_plasticity.data import load_omniglot
    from avalanche_plasticity.tasks import OmniglotTaskSource

    data = load_omniglot("background", root=omniglot_root, image_size=28)
    trunk = dict(channels=8, strides=(2, 2, 2, 2), image_size=28)
    learner = FLPLearner(
        FLPConfig(
            layer_sizes=(32, 32, 20),
            task="classification",
            trunk=trunk,
            init_plasticity=0.0,
            init_feedback_strength=1.0,
        ),
        seed=0,
    )
    source = OmniglotTaskSource(data.images[:800], ways=5, shots=3, query_shots=2, num_units=20)
    held = OmniglotTaskSource(data.images[800:], ways=5, shots=3, query_shots=2, num_units=20)
    held_batch = held.sample(32, torch.Generator().manual_seed(0))
    with torch.no_grad():
        before = meta_loss(learner, held_batch).item()
    meta_train(
        learner,
        source,
        MetaTrainConfig(
            steps=40, meta_batch_size=8, default_lr=3e-3, lr={"plasticity": 1e-2, "feedback_strength": 0.0}
        ),
        progress=False,
    )
    with torch.no_grad():
        after = meta_loss(learner, held_batch).item()
    assert after < before - 0.2, (before, after)


class Killed(Exception):
    pass


def test_killed_and_resumed_run_equals_uninterrupted(tmp_path):
    source = SineTaskSource(**SMALL_SINE)
    cfg = MetaTrainConfig(
        steps=10, meta_batch_size=4, default_lr=3e-3, lr={"plasticity": 1e-4}, checkpoint_every=3, seed=5
    )
    ref = small_flp()
    meta_train(ref, source, cfg, progress=False)

    path = tmp_path / "run.pt"

    def kill_at_step_8(step, _):
        if step == 8:
            raise Killed  # dies between checkpoints (last one at step 6)

    with pytest.raises(Killed):
        meta_train(small_flp(), source, cfg, checkpoint=path, progress=False, on_step=kill_at_step_8)
    resumed = small_flp()  # a fresh process: new object, state only from the checkpoint
    result = meta_train(resumed, source, cfg, checkpoint=path, progress=False)
    assert result.steps_done == 10
    for a, b in zip(ref.state_dict().values(), resumed.state_dict().values(), strict=True):
        assert torch.equal(a, b)
    loaded = load_learner(path)
    for a, b in zip(ref.state_dict().values(), loaded.state_dict().values(), strict=True):
        assert torch.equal(a, b)


def test_resume_with_other_config_is_refused(tmp_path):
    source = SineTaskSource(**SMALL_SINE)
    path = tmp_path / "run.pt"
    meta_train(
        small_flp(), source, MetaTrainConfig(steps=2, meta_batch_size=2), checkpoint=path, progress=False
    )
    other = FLPLearner(FLPConfig(layer_sizes=(4, 8, 1)), seed=0)
    with pytest.raises(CheckpointError, match="different learner config"):
        meta_train(
            other, source, MetaTrainConfig(steps=2, meta_batch_size=2), checkpoint=path, progress=False
        )
    with pytest.raises(CheckpointError, match="OMLLearner"):
        meta_train(
            small_oml(), source, MetaTrainConfig(steps=2, meta_batch_size=2), checkpoint=path, progress=False
        )


def test_oml_meta_gradient_is_second_order():
    """OML's meta-gradient w.r.t. the RLN must include the second-order terms: it differs from the
    first-order variant and matches finite differences."""
    torch.manual_seed(0)
    learner = OMLLearner(OMLConfig(rln_sizes=(4, 6), pln_sizes=(6, 5, 1), inner_lr=0.1), seed=0).double()
    batch = SineTaskSource(**SMALL_SINE).sample(2, torch.Generator().manual_seed(0))
    batch.support_x, batch.support_y = batch.support_x[:, :4].double(), batch.support_y[:, :4].double()
    batch.query_x, batch.query_y = batch.query_x.double(), batch.query_y.double()
    w = learner.rln[0].weight
    g2 = torch.autograd.grad(meta_loss(learner, batch), w)[0]
    learner.config.first_order = True
    g1 = torch.autograd.grad(meta_loss(learner, batch), w)[0]
    learner.config.first_order = False
    assert not torch.allclose(g1, g2)
    eps, (i, j) = 1e-6, (1, 2)
    with torch.no_grad():
        w[i, j] += eps
        up = meta_loss(learner, batch).item()
        w[i, j] -= 2 * eps
        down = meta_loss(learner, batch).item()
        w[i, j] += eps
    assert abs((up - down) / (2 * eps) - g2[i, j].item()) < 1e-6


def test_episode_length_curriculum_follows_the_step_and_resumes(tmp_path):
    """``length_schedule`` lengthens the episodes at the named meta-updates; the engine asks the source for
    each step's length, so a resumed run sees the same episodes as an uninterrupted one."""
    source = SineTaskSource(**{**SMALL_SINE, "length_schedule": ((2, 7), (4, 9))})
    g = torch.Generator().manual_seed(0)
    assert [source.for_step(s).sample(1, g).support_x.shape[1] for s in range(6)] == [15, 15, 21, 21, 27, 27]
    cfg = MetaTrainConfig(steps=6, meta_batch_size=2, default_lr=3e-3, checkpoint_every=2, seed=1)
    ref = small_flp()
    meta_train(ref, source, cfg, progress=False)
    path = tmp_path / "run.pt"
    meta_train(small_flp(), source, cfg, checkpoint=path, progress=False, stop_after=3)
    resumed = small_flp()
    meta_train(resumed, source, cfg, checkpoint=path, progress=False)
    for a, b in zip(ref.state_dict().values(), resumed.state_dict().values(), strict=True):
        assert torch.equal(a, b)


@pytest.mark.parametrize("schedule", [((1, 0),), ((-1, 5),), (("a", 5),), (3,)])
def test_bad_length_schedule_raises(schedule):
    with pytest.raises(ValueError, match="length_schedule"):
        SineTaskSource(**{**SMALL_SINE, "length_schedule": schedule})


class _FixedEpisodes:
    """A source that always gives the same batch: episode 0's inputs scaled up so far that the rule's
    learning overflows there (the others are ordinary)."""

    def __init__(self, diverging: tuple[int, ...]) -> None:
        g = torch.Generator().manual_seed(0)
        x = torch.rand(4, 20, 1, 6, generator=g)
        for e in diverging:
            x[e] *= 1e30  # softplus(1e30 * w x) and its square overflow float32
        y = torch.randint(0, 3, (4, 20, 1), generator=g)
        self.batch = EpisodeBatch(
            x, y, torch.rand(4, 6, 6, generator=g), torch.randint(0, 3, (4, 6), generator=g)
        )

    def sample(self, episodes, generator):
        return self.batch


@pytest.mark.parametrize("on_diverged", ["skip_batch", "drop_episodes"])
def test_a_diverged_episode_is_dropped_or_skips_its_batch(on_diverged):
    from avalanche_plasticity.plasticity_rules.learner import rule_learner

    def run(diverging):
        learner = rule_learner(
            ("pseudo_gradient", "oja"),
            layer_sizes=(6, 5, 3),
            coefficients={"pseudo_gradient": 0.05, "oja": 0.01},
            input_shape=(6,),
        )
        torch.manual_seed(0)  # the rule learner draws its episodes' initial weights from torch's generator
        before = learner.coefficients.detach().clone()
        cfg = MetaTrainConfig(steps=1, meta_batch_size=4, default_lr=1e-2, on_diverged=on_diverged)
        result = meta_train(learner, _FixedEpisodes(diverging), cfg, progress=False)
        return result.history[-1], before, learner.coefficients.detach()

    entry, before, after = run((0,))
    if on_diverged == "skip_batch":
        assert entry["meta_loss"] != entry["meta_loss"]  # NaN: the whole batch is skipped
        assert torch.equal(before, after)
    else:
        assert entry["dropped_episodes"] == 1  # the three ordinary episodes still meta-train
        assert entry["meta_loss"] == pytest.approx(entry["meta_loss"]) and entry["meta_loss"] < 10
        assert not torch.equal(before, after)
    entry, before, after = run((0, 1, 2, 3))  # every episode diverges: no update either way
    assert torch.equal(before, after)
    assert entry.get("dropped_episodes", 4) == 4


def test_bad_on_diverged_raises():
    with pytest.raises(ValueError, match="on_diverged must be one of"):
        MetaTrainConfig(on_diverged="retry")
