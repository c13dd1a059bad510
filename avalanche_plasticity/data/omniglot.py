"""Omniglot (Lake et al. 2015) with its background (964 classes) / evaluation (659 classes) split.

Two on-disk layouts are read:

* ``<root>/omniglot/images_{background,evaluation}.npz`` -- arrays ``images`` bool (C, 20, 105, 105) with
  True = paper and ``labels`` (C, 20); row i of background is character id i+1, row j of evaluation is
  id j+965 (the layout of the project's shared data folder).
* the official release: ``<root>/omniglot/images_{background,evaluation}.zip`` or the unpacked folders
  ``images_background/<Alphabet>/characterNN/*.png``. :func:`download_omniglot` fetches the zips.

Images are inverted (ink = 1), resized to ``image_size`` (28 by default, 84 for the papers' scale) with
area averaging, and cached as float16 arrays in the user cache (never next to the data).
"""

from __future__ import annotations

import hashlib
import io
import re
import urllib.request
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from ..checkpoint import write_bytes_atomic
from .root import DataNotFoundError, cache_dir, resolve_data_root

OMNIGLOT_URL = "https://raw.githubusercontent.com/brendenlake/omniglot/master/python/{split}.zip"
SPLITS = ("background", "evaluation")
NUM_CLASSES = {"background": 964, "evaluation": 659}
DRAWERS = 20

# (alphabet, number of characters) in character-id order; ids are contiguous per alphabet.
ALPHABETS = {
    "background": [
        ("Arcadian", 26),
        ("Armenian", 41),
        ("Asomtavruli_(Georgian)", 40),
        ("Balinese", 24),
        ("Bengali", 46),
        ("Blackfoot_(Canadian_Aboriginal_Syllabics)", 14),
        ("Braille", 26),
        ("Cyrillic", 33),
        ("Early_Aramaic", 22),
        ("Syriac_(Estrangelo)", 23),
        ("Anglo-Saxon_Futhorc", 29),
        ("Futurama", 26),
        ("Grantha", 43),
        ("Greek", 24),
        ("Gujarati", 48),
        ("Hebrew", 22),
        ("Japanese_(hiragana)", 52),
        ("Inuktitut_(Canadian_Aboriginal_Syllabics)", 16),
        ("Malay_(Jawi_-_Arabic)", 40),
        ("Japanese_(katakana)", 47),
        ("Korean", 40),
        ("Latin", 26),
        ("Alphabet_of_the_Magi", 20),
        ("Mkhedruli_(Georgian)", 41),
        ("Burmese_(Myanmar)", 34),
        ("N_Ko", 33),
        ("Ojibwe_(Canadian_Aboriginal_Syllabics)", 14),
        ("Sanskrit", 42),
        ("Tagalog", 17),
        ("Tifinagh", 55),
    ],
    "evaluation": [
        ("Angelic", 20),
        ("Atemayar_Qelisayer", 26),
        ("Atlantean", 26),
        ("Aurek-Besh", 26),
        ("Avesta", 26),
        ("Ge_ez", 26),
        ("Glagolitic", 45),
        ("Gurmukhi", 45),
        ("Kannada", 41),
        ("Keble", 26),
        ("Malayalam", 47),
        ("Manipuri", 40),
        ("Mongolian", 30),
        ("Old_Church_Slavonic_(Cyrillic)", 45),
        ("Oriya", 46),
        ("Syriac_(Serto)", 23),
        ("Sylheti", 28),
        ("Tengwar", 25),
        ("Tibetan", 42),
        ("ULOG", 26),
    ],
}


@dataclass(frozen=True)
class OmniglotSplit:
    """One Omniglot split, resized.

    ``images``: float32 (classes, 20, 1, size, size), ink = 1; ``alphabet_ids``: int64 (classes,);
    ``alphabet_names``: the split's alphabets in id order. Class c of this split is row c.
    """

    split: str
    images: torch.Tensor
    alphabet_ids: torch.Tensor
    alphabet_names: tuple[str, ...]

    @property
    def num_classes(self) -> int:
        return self.images.shape[0]


def _alphabet_ids(split: str) -> np.ndarray:
    return np.concatenate([np.full(n, i) for i, (_, n) in enumerate(ALPHABETS[split])]).astype(np.int64)


def _missing_message(root: Path, split: str) -> str:
    return (
        f"Omniglot '{split}' split not found under data root {root}. Looked for "
        f"{root / 'omniglot' / f'images_{split}.npz'}, {root / 'omniglot' / f'images_{split}.zip'} and "
        f"{root / 'omniglot' / f'images_{split}'}/. Get it with "
        f"`avalanche_plasticity.data.download_omniglot('{root}')` (needs internet), or pass "
        "`root=`/set AVP_DATA_DIR to a folder that has it."
    )


def _read_npz(path: Path) -> np.ndarray:
    with np.load(path) as z:
        paper = z["images"]
    return ~paper.astype(bool)  # True = ink


_CHAR_RE = re.compile(r"character(\d+)")


def _read_png_tree(files: dict[str, bytes], split: str) -> np.ndarray:
    """Official layout: <split>/<Alphabet>/characterNN/<id>_<drawer>.png (True = paper in the PNG)."""
    from PIL import Image

    by_char: dict[tuple[str, int], dict[int, np.ndarray]] = {}
    for name, data in files.items():
        parts = Path(name).parts
        if len(parts) < 3 or not name.endswith(".png"):
            continue
        alphabet, char_dir, fname = parts[-3], parts[-2], parts[-1]
        m = _CHAR_RE.fullmatch(char_dir)
        if not m:
            continue
        drawer = int(Path(fname).stem.split("_")[-1])
        img = np.asarray(Image.open(io.BytesIO(data)).convert("L")) > 127
        by_char.setdefault((alphabet, int(m.group(1))), {})[drawer] = ~img
    order = [(a, k + 1) for a, n in ALPHABETS[split] for k in range(n)]
    missing = [key for key in order if key not in by_char or len(by_char[key]) != DRAWERS]
    if missing:
        raise DataNotFoundError(
            f"Omniglot '{split}' PNG tree is incomplete: {len(missing)} characters "
            f"missing or short, e.g. {missing[:3]}"
        )
    return np.stack([np.stack([by_char[key][d] for d in range(1, DRAWERS + 1)]) for key in order])


def _load_raw(root: Path, split: str) -> np.ndarray:
    base = root / "omniglot"
    npz, zpath, folder = base / f"images_{split}.npz", base / f"images_{split}.zip", base / f"images_{split}"
    if npz.is_file():
        return _read_npz(npz)
    if zpath.is_file():
        with zipfile.ZipFile(zpath) as zf:
            files = {n: zf.read(n) for n in zf.namelist() if n.endswith(".png")}
        return _read_png_tree(files, split)
    if folder.is_dir():
        files = {str(p.relative_to(base)): p.read_bytes() for p in folder.rglob("*.png")}
        return _read_png_tree(files, split)
    raise DataNotFoundError(_missing_message(root, split))


def resize_images(ink: np.ndarray, image_size: int) -> np.ndarray:
    """Area-average resize of boolean (..., 105, 105) ink masks to float (..., size, size)."""
    lead = ink.shape[:-2]
    x = torch.from_numpy(ink.reshape(-1, 1, *ink.shape[-2:]).astype(np.float32))
    out = torch.cat(
        [F.interpolate(chunk, size=(image_size, image_size), mode="area") for chunk in x.split(4096)]
    )
    return out.reshape(*lead, 1, image_size, image_size).numpy()


def load_omniglot(
    split: str = "background", *, root: str | Path | None = None, image_size: int = 28
) -> OmniglotSplit:
    """Load one Omniglot split resized to ``image_size`` (cached after the first call).

    :param split: ``"background"`` (964 meta-training classes) or ``"evaluation"`` (659 classes).
    :param root: data root (default: ``$AVP_DATA_DIR``, else the user cache directory).
    :param image_size: side of the square images (28 CPU-size, 84 paper-size).
    :raises DataNotFoundError: if the split is not under ``root``.
    """
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
    if not isinstance(image_size, int) or not 8 <= image_size <= 105:
        raise ValueError(f"image_size must be an int in [8, 105], got {image_size!r}")
    root_path = resolve_data_root(root)
    if not (root_path / "omniglot").exists():
        raise DataNotFoundError(_missing_message(root_path, split))
    source = next(
        (
            p
            for p in (
                root_path / "omniglot" / f"images_{split}.npz",
                root_path / "omniglot" / f"images_{split}.zip",
                root_path / "omniglot" / f"images_{split}",
            )
            if p.exists()
        ),
        None,
    )
    if source is None:
        raise DataNotFoundError(_missing_message(root_path, split))
    stamp = f"{source.resolve()}:{source.stat().st_size}:{int(source.stat().st_mtime)}"
    key = hashlib.sha1(stamp.encode()).hexdigest()[:12]
    cached = cache_dir() / f"omniglot_{split}_{image_size}_{key}.npy"
    if cached.is_file():
        images = np.load(cached).astype(np.float32)
    else:
        half = resize_images(_load_raw(root_path, split), image_size).astype(np.float16)
        buf = io.BytesIO()
        np.save(buf, half)
        write_bytes_atomic(buf.getvalue(), cached)  # safe when several processes build it at once
        images = half.astype(np.float32)  # identical to what later (cached) loads return
    if images.shape[:2] != (NUM_CLASSES[split], DRAWERS):
        raise DataNotFoundError(
            f"Omniglot '{split}' at {source} has shape {images.shape[:2]}, expected "
            f"({NUM_CLASSES[split]}, {DRAWERS})"
        )
    return OmniglotSplit(
        split,
        torch.from_numpy(images),
        torch.from_numpy(_alphabet_ids(split)),
        tuple(a for a, _ in ALPHABETS[split]),
    )


def download_omniglot(root: str | Path | None = None) -> Path:
    """Download the official Omniglot zips into ``<root>/omniglot`` (needs internet)."""
    base = resolve_data_root(root) / "omniglot"
    base.mkdir(parents=True, exist_ok=True)
    for split in SPLITS:
        target = base / f"images_{split}.zip"
        if target.exists():
            continue
        with urllib.request.urlopen(OMNIGLOT_URL.format(split=f"images_{split}"), timeout=60) as r:
            write_bytes_atomic(r.read(), target)
    return base
