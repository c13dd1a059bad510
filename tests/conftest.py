import os
import warnings
from pathlib import Path

import pytest
import torch

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
warnings.filterwarnings("ignore", category=DeprecationWarning)


def data_root() -> Path | None:
    """The data root for tests: $AVP_DATA_DIR, else ../shared/data beside the checkout."""
    env = os.environ.get("AVP_DATA_DIR")
    root = Path(env) if env else SHARED_DATA
    return root if root.exists() else None


@pytest.fixture
def omniglot_root() -> Path:
    root = data_root()
    if root is None or not (root / "omniglot" / "images_background.npz").exists():
        pytest.skip(f"Omniglot not found (set AVP_DATA_DIR; looked in {root or SHARED_DATA})")
    return root


@pytest.fixture(autouse=True)
def _isolated_cache(tmp_path_factory, monkeypatch):
    cache = tmp_path_factory.getbasetemp() / "avp_cache"
    monkeypatch.setenv("AVP_CACHE_DIR", str(cache))
    torch.manual_seed(0)


@pytest.fixture
def mnist_root() -> Path:
    root = data_root()
    found = root is not None and any((root / sub / "MNIST" / "raw").exists() for sub in ("", "mnist"))
    if not found:
        pytest.skip(f"MNIST not found (set AVP_DATA_DIR; looked in {root or SHARED_DATA})")
    return root


@pytest.fixture(scope="session")
def benchmark_script():
    """``load(name)``: ``benchmarks/<name>.py`` as a fresh module (each call its own copy to monkeypatch)."""
    import importlib.util

    def load(name: str):
        path = Path(__file__).resolve().parents[1] / "benchmarks" / f"{name}.py"
        spec = importlib.util.spec_from_file_location(f"{name}_under_test", path)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        return module

    return load
