"""Meta-training episodes that are streams of tasks (:class:`avalanche_plasticity.tasks.OmniglotTaskSource`
with ``tasks > 1``): what the shipped plasticity rule is meta-trained on so that it stays stable over long
deployed streams."""

from __future__ import annotations

import random

import pytest
import torch

from avalanche_plasticity.tasks import OmniglotTaskSource

CLASSES, DRAWERS = 30, 6


def _images() -> torch.Tensor:
    """Class ``c`` is the constant image ``c + 1`` (so an image names its class)."""
    values = torch.arange(1, CLASSES + 1, dtype=torch.float32)
    return values.view(CLASSES, 1, 1, 1, 1).expand(CLASSES, DRAWERS, 1, 4, 4).clone()


def _source(**kwargs) -> OmniglotTaskSource:
    return OmniglotTaskSource(_images(), ways=3, shots=2, query_shots=1, num_units=5, order="iid", **kwargs)


def test_a_stream_episode_learns_tasks_in_sequence_and_queries_the_last():
    batch = _source(tasks=4).sample(2, torch.Generator().manual_seed(0))
    assert batch.support_x.shape[:3] == (2, 4 * 3 * 2, 1)
    assert batch.query_x.shape[:2] == (2, 3)
    for e in range(2):
        classes = batch.support_x[e, :, 0, 0, 0, 0].view(4, 3 * 2)  # the class of every step, per task
        units = batch.support_y[e, :, 0].view(4, 3 * 2)
        for task in range(4):
            assert len(set(classes[task].tolist())) == 3  # a 3-way task of its own draw
            mapping = {float(c): int(u) for c, u in zip(classes[task], units[task], strict=True)}
            assert len(set(mapping.values())) == 3  # its classes on 3 distinct units of the 5
        query_classes = set(batch.query_x[e, :, 0, 0, 0].tolist())
        assert query_classes == set(classes[-1].tolist())  # the query tests the last task only
        for c, u in zip(batch.query_x[e, :, 0, 0, 0], batch.query_y[e], strict=True):
            assert mapping[float(c)] == int(u)  # with the last task's units


def test_a_class_incremental_stream_episode_queries_every_task_on_disjoint_units():
    source = OmniglotTaskSource(
        _images(), ways=3, shots=2, query_shots=1, num_units=12, order="iid", tasks=4, query="seen"
    )
    batch = source.sample(2, torch.Generator().manual_seed(0))
    assert batch.query_x.shape[:2] == (2, 4 * 3)  # every task's query
    for e in range(2):
        classes = batch.support_x[e, :, 0, 0, 0, 0].view(4, 3 * 2)
        units = batch.support_y[e, :, 0].view(4, 3 * 2)
        task_units = [set(units[task].tolist()) for task in range(4)]
        assert all(len(u) == 3 for u in task_units)
        assert len(set().union(*task_units)) == 12  # no unit is reused by a later task
        mapping = {float(c): int(u) for c, u in zip(classes.flatten(), units.flatten(), strict=True)}
        assert set(batch.query_x[e, :, 0, 0, 0].tolist()) == set(mapping)  # the query covers every task
        for c, u in zip(batch.query_x[e, :, 0, 0, 0], batch.query_y[e], strict=True):
            assert mapping[float(c)] == int(u)


def test_one_task_is_the_classic_episode():
    random.seed(1)  # learn2learn draws the classes with Python's random
    a = _source().sample(3, torch.Generator().manual_seed(1))
    random.seed(1)
    b = _source(tasks=1).sample(3, torch.Generator().manual_seed(1))
    assert a.support_x.shape[1] == 3 * 2
    for field in ("support_x", "support_y", "query_x", "query_y"):
        assert torch.equal(getattr(a, field), getattr(b, field))


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"tasks": 0}, "tasks must be an int >= 1"),
        ({"tasks": 2.0}, "tasks must be an int >= 1"),
        ({"tasks": 2, "query": "all"}, "query must be 'last'"),
        ({"tasks": 2, "query": "seen"}, r"tasks \* ways <= num_units"),
    ],
)
def test_bad_stream_settings_raise(kwargs, match):
    with pytest.raises(ValueError, match=match):
        _source(**kwargs)
