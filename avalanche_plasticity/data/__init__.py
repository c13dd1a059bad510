"""Datasets: Omniglot (background/evaluation split) MNIST and Fashion-MNIST, read from a local data root."""

from .mnist import EMNIST_CLASSES, load_emnist, load_fashion_mnist, load_mnist
from .omniglot import OmniglotSplit, download_omniglot, load_omniglot
from .quiet_imports import import_learn2learn
from .root import ENV_VAR, DataNotFoundError, default_data_root, resolve_data_root
from .seeding import derive_seed, seeded_generator

__all__ = [
    "ENV_VAR",
    "DataNotFoundError",
    "OmniglotSplit",
    "default_data_root",
    "download_omniglot",
    "EMNIST_CLASSES",
    "load_emnist",
    "load_fashion_mnist",
    "load_mnist",
    "load_omniglot",
    "resolve_data_root",
    "derive_seed",
    "import_learn2learn",
    "seeded_generator",
]
