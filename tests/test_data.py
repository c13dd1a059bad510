"""Data loaders read the real files: npz arrays, the official PNG/zip layout, MNIST IDX."""

import io
import zipfile

import numpy as np
import pytest
import torch

from avalanche_plasticity.data import load_mnist, load_omniglot
from avalanche_plasticity.data.omniglot import ALPHABETS, _read_png_tree

from .conftest import data_root


def test_omniglot_splits_and_alphabets(omniglot_root):
    bg = load_omniglot("background", root=omniglot_root)
    ev = load_omniglot("evaluation", root=omniglot_root)
    assert bg.images.shape == (964, 20, 1, 28, 28) and ev.images.shape == (659, 20, 1, 28, 28)
    assert bg.alphabet_ids.max() == 29 and ev.alphabet_ids.max() == 19
    ink = bg.images.mean().item()
    assert 0.03 < ink < 0.2  # inverted: ink is the minority
    assert ev.alphabet_names[0] == "Angelic" and int((ev.alphabet_ids == 0).sum()) == 20
    again = load_omniglot("background", root=omniglot_root)  # served from the cache
    assert torch.equal(again.images, bg.images)


def png_tree(paper: np.ndarray, alphabets: int | None = None) -> dict[str, bytes]:
    """The official layout ``images_evaluation/<Alphabet>/characterNN/<id>_<drawer>.png`` for the first
    ``alphabets`` evaluation alphabets (all by default), PNG-encoded from the npz arrays."""
    from PIL import Image

    files, offset = {}, 0
    for alphabet, n in ALPHABETS["evaluation"][:alphabets]:
        for k in range(n):
            for d in range(20):
                buf = io.BytesIO()
                Image.fromarray(paper[offset + k, d].astype(np.uint8) * 255).save(buf, format="PNG")
                char_id = offset + k + 965
                files[f"images_evaluation/{alphabet}/character{k + 1:02d}/{char_id:04d}_{d + 1:02d}.png"] = (
                    buf.getvalue()
                )
        offset += n
    return files


def evaluation_paper(root) -> np.ndarray:
    with np.load(root / "omniglot" / "images_evaluation.npz") as z:
        return z["images"]


def test_omniglot_official_png_layout_matches_npz(omniglot_root):
    paper = evaluation_paper(omniglot_root)
    with pytest.raises(Exception, match="incomplete"):
        _read_png_tree(png_tree(paper, alphabets=1), "evaluation")
    assert np.array_equal(_read_png_tree(png_tree(paper), "evaluation"), ~paper)


def test_omniglot_zip_root(tmp_path, omniglot_root):
    """A root holding the official zip is read through the same path as a user's download."""
    (tmp_path / "omniglot").mkdir()
    with zipfile.ZipFile(tmp_path / "omniglot" / "images_evaluation.zip", "w") as zf:
        for name, data in png_tree(evaluation_paper(omniglot_root)).items():
            zf.writestr(name, data)
    from_zip = load_omniglot("evaluation", root=tmp_path)
    from_npz = load_omniglot("evaluation", root=omniglot_root)
    assert torch.equal(from_zip.images, from_npz.images)


def test_mnist_idx():
    root = data_root()
    if (
        root is None
        or not (root / "MNIST" / "raw").exists()
        and not (root / "mnist" / "MNIST" / "raw").exists()
    ):
        pytest.skip("MNIST not found under the data root")
    mroot = root / "mnist" if (root / "mnist" / "MNIST").exists() else root
    x, y = load_mnist("test", root=mroot)
    assert x.shape == (10000, 1, 28, 28) and y.shape == (10000,)
    assert 0.0 <= x.min() and x.max() <= 1.0
    _, ytr = load_mnist("train", root=mroot)
    assert torch.bincount(ytr).tolist() == [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949]


def test_fashion_mnist_idx():
    from avalanche_plasticity.data import DataNotFoundError, load_fashion_mnist

    try:
        x, y = load_fashion_mnist("test")
    except DataNotFoundError as e:
        pytest.skip(f"Fashion-MNIST not installed: {e}")
    assert x.shape == (10000, 1, 28, 28) and 0 <= float(x.min()) and float(x.max()) <= 1
    assert torch.bincount(y).tolist() == [1000] * 10


def test_emnist_balanced_the_papers_data():
    """EMNIST "balanced" (Shervani-Tabar & Rosenbaum's dataset): 47 classes, 400 test images each, and
    episodes of the paper's K = 50, Q = 10 from it."""
    from avalanche_plasticity.data import DataNotFoundError, load_emnist
    from avalanche_plasticity.plasticity_rules import emnist_episodes

    try:
        x, y = load_emnist("test")
    except DataNotFoundError as e:
        pytest.skip(f"EMNIST not under the data root: {e}")
    assert x.shape == (18800, 1, 28, 28) and 0.0 <= float(x.min()) and float(x.max()) <= 1.0
    assert torch.bincount(y).tolist() == [400] * 47
    batch = emnist_episodes("test").sample(2, torch.Generator().manual_seed(0))
    assert batch.support_x.shape[:2] == (2, 250) and batch.query_x.shape[:2] == (2, 50)


def test_emnist_reader_turns_images_upright_and_reports_bad_input(tmp_path):
    """The IDX files store each EMNIST image transposed; the loader returns it upright. A missing file,
    an unknown split or subset are clear errors."""
    import gzip
    import struct

    from avalanche_plasticity.data import DataNotFoundError, load_emnist

    upright = np.zeros((2, 28, 28), dtype=np.uint8)
    upright[:, 0, :] = 255  # a bar along the top row
    raw = tmp_path / "EMNIST" / "raw"
    raw.mkdir(parents=True)
    stored = upright.transpose(0, 2, 1)  # as the files hold it: a bar down the left column
    with gzip.open(raw / "emnist-balanced-test-images-idx3-ubyte.gz", "wb") as f:
        f.write(struct.pack(">BBBBIII", 0, 0, 8, 3, 2, 28, 28) + stored.tobytes())
    with gzip.open(raw / "emnist-balanced-test-labels-idx1-ubyte.gz", "wb") as f:
        f.write(struct.pack(">BBBBI", 0, 0, 8, 1, 2) + bytes([3, 46]))
    x, y = load_emnist("test", root=tmp_path)
    assert torch.equal(x[:, 0], torch.from_numpy(upright / 255.0).float()) and y.tolist() == [3, 46]
    with pytest.raises(DataNotFoundError, match=r"torchvision.datasets.EMNIST\(.*split='balanced'"):
        load_emnist("train", root=tmp_path)
    with pytest.raises(ValueError, match="split must be 'train' or 'test', got 'val'"):
        load_emnist("val", root=tmp_path)
    with pytest.raises(ValueError, match="subset must be one of"):
        load_emnist("test", subset="kanji", root=tmp_path)
