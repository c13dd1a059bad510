"""Bad input raises a clear error naming what is wrong."""

import pytest
import torch
from avalanche.benchmarks.scenarios import benchmark_from_datasets
from avalanche.benchmarks.utils import AvalancheDataset
from avalanche.training.plugins import EvaluationPlugin

from avalanche_plasticity.checkpoint import CheckpointError
from avalanche_plasticity.data import DataNotFoundError, load_mnist, load_omniglot
from avalanche_plasticity.flp import FLPConfig, FLPLearner
from avalanche_plasticity.meta_learning import MetaTrainConfig, load_learner, save_learner
from avalanche_plasticity.oml import OMLConfig, OMLLearner
from avalanche_plasticity.scenarios import ContinualOmniglot, IncrementalSine
from avalanche_plasticity.strategies import FLP, OML


def quiet():
    return EvaluationPlugin(loggers=[])


def classification_flp():
    return FLP(
        learner=FLPLearner(FLPConfig(layer_sizes=(4, 8, 3), task="classification"), seed=0), evaluator=quiet()
    )


def test_wrong_input_shape():
    s = classification_flp()
    with pytest.raises(ValueError, match=r"shape \(batch, 4\)"):
        s.model(torch.randn(2, 5))
    with pytest.raises(ValueError, match=r"shape \(batch, 4\)"):
        s.model.learn(torch.randn(2, 5), torch.tensor([0, 1]))


def test_labels_beyond_head():
    s = classification_flp()
    with pytest.raises(ValueError, match=r"labels must be in \[0, 3\)"):
        s.model.learn(torch.randn(2, 4), torch.tensor([0, 3]))
    oml = OML(
        learner=OMLLearner(OMLConfig(rln_sizes=(4, 8), pln_sizes=(8, 3), task="classification"), seed=0),
        evaluator=quiet(),
    )
    ds = AvalancheDataset([torch.utils.data.TensorDataset(torch.randn(4, 4), torch.tensor([0, 1, 2, 7]))])
    bm = benchmark_from_datasets(train=[ds], test=[ds])
    with pytest.raises(ValueError, match=r"labels must be in \[0, 3\)"):
        oml.train(bm.train_stream[0])


def test_nan_in_batch():
    s = classification_flp()
    x = torch.randn(2, 4)
    x[1, 2] = float("nan")
    with pytest.raises(ValueError, match="NaN"):
        s.model.learn(x, torch.tensor([0, 1]))
    reg = FLP(learner=FLPLearner(FLPConfig(layer_sizes=(4, 8, 1)), seed=0), evaluator=quiet())
    with pytest.raises(ValueError, match="NaN"):
        reg.model.learn(torch.randn(2, 4), torch.tensor([[0.0], [float("nan")]]))


def test_empty_experience():
    empty = AvalancheDataset([torch.utils.data.TensorDataset(torch.zeros(0, 4), torch.zeros(0, 1))])
    full = AvalancheDataset([torch.utils.data.TensorDataset(torch.zeros(2, 4), torch.zeros(2, 1))])
    bm = benchmark_from_datasets(train=[empty], test=[full])
    s = FLP(learner=FLPLearner(FLPConfig(layer_sizes=(4, 8, 1)), seed=0), evaluator=quiet())
    with pytest.raises(ValueError, match="experience 0 is empty"):
        s.train(bm.train_stream[0])


def test_missing_data_root(tmp_path):
    with pytest.raises(DataNotFoundError, match="Omniglot 'background' split not found under data root"):
        load_omniglot("background", root=tmp_path / "nowhere")
    with pytest.raises(DataNotFoundError, match="AVP_DATA_DIR"):
        ContinualOmniglot(root=tmp_path)
    with pytest.raises(DataNotFoundError, match="MNIST 'train' not found"):
        load_mnist("train", root=tmp_path)


def test_corrupt_and_mismatched_checkpoints(tmp_path):
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"not a checkpoint at all")
    with pytest.raises(CheckpointError, match="corrupt"):
        load_learner(bad)
    with pytest.raises(CheckpointError, match="corrupt"):
        FLP(learner=bad)
    good = tmp_path / "oml.pt"
    save_learner(OMLLearner(OMLConfig(), seed=0), good)
    with pytest.raises(CheckpointError, match="holds a 'OMLLearner', expected 'FLPLearner'"):
        FLP(learner=good)
    truncated = tmp_path / "truncated.pt"
    truncated.write_bytes(good.read_bytes()[:200])
    with pytest.raises(CheckpointError, match="corrupt"):
        load_learner(truncated)
    # weights that do not fit the stored config
    flp = FLPLearner(FLPConfig(layer_sizes=(4, 8, 1)), seed=0)
    ckpt = torch.load(good, weights_only=False)
    torch.save({**ckpt, "kind": "FLPLearner", "learner_config": vars(flp.config)}, tmp_path / "mix.pt")
    with pytest.raises(CheckpointError, match="does not match its learner config"):
        load_learner(tmp_path / "mix.pt")
    with pytest.raises(FileNotFoundError):
        load_learner(tmp_path / "missing.pt")


def test_bad_configs():
    with pytest.raises(ValueError, match="task must be one of"):
        FLPConfig(task="ranking")
    with pytest.raises(ValueError, match="plasticity_granularity"):
        FLPConfig(plasticity_granularity="dendrite")
    with pytest.raises(ValueError, match=r"rln_sizes\[-1\]"):
        OMLConfig(rln_sizes=(11, 10), pln_sizes=(20, 1))
    with pytest.raises(ValueError, match="meta_batch_size must be a positive int"):
        MetaTrainConfig(meta_batch_size=0)
    with pytest.raises(ValueError, match="grad_clip must be None or a finite number > 0, got inf"):
        MetaTrainConfig(grad_clip=float("inf"))
    with pytest.raises(ValueError, match="seed must be an int >= 0, got -1"):
        MetaTrainConfig(seed=-1)
    with pytest.raises(ValueError, match="num_functions must be a positive int"):
        IncrementalSine(num_functions=0)
    with pytest.raises(ValueError, match="classes_per_experience must be a positive divisor"):
        ContinualOmniglot(num_classes=10, classes_per_experience=3)
    with pytest.raises(TypeError, match="learner must be a FLPLearner"):
        FLP(learner=OMLLearner(OMLConfig(), seed=0))
