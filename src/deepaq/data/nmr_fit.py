"""A model's NMR head and default bank, fitted on dataset folders (`deepaq fit-nmr`).

The bank: clean items of one split (by default `test`, whose clips the head never fits on),
embedded by the model. The head (`deepaq.models.nmr_head`): for training items of the
`train` split (clean ones included, so that "transparent" has a target too), each window's
full-reference distance to its clip's clean item, as the model itself scores it, regressed
on the window's own features and its distances to that bank. Validation items report how
well the head follows the full-reference distance; nothing here sees a listening test.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from deepaq.errors import ConfigError

Pair = tuple[str, Path, Path]  # item_id, clean item, item (deepaq.data.teachers.clean_pairs)


def _window_targets(scorer, pairs: list[Pair]) -> tuple[np.ndarray, np.ndarray]:
    """Window embeddings of the items and each window's full-reference distance to its clean item."""
    from tqdm import tqdm

    clean: dict[Path, np.ndarray] = {}
    rows, targets = [], []
    for _, clean_path, path in tqdm(pairs, desc="nmr items", unit="item"):
        if clean_path not in clean:
            clean[clean_path] = scorer.embed(clean_path).windows[:, 0]
        deg, ref = scorer.embed(path).windows[:, 0], clean[clean_path]
        n = min(len(deg), len(ref))
        rows.append(deg[:n])
        targets.append(scorer.distance(ref[:n] - deg[:n], np.linalg.norm))
    return np.concatenate(rows), np.concatenate(targets)


def _sample(pairs: list[Pair], n: int, rng: np.random.Generator) -> list[Pair]:
    return [pairs[i] for i in np.sort(rng.permutation(len(pairs))[:n])]


def fit_model_nmr(model: Path, datasets: list[Path], *, bank_split: str = "test", bank_size: int = 82,
                  groups: tuple[str, ...] = ("part_mean", "bank"), ridge: float = 1e-2, bank_weight: float = 0.5,
                  max_items: int = 12000, seed: int = 0, bank_datasets: list[Path] | None = None) -> dict:
    """Write `model/bank.safetensors` and `model/nmr_head.safetensors`; return what was measured.
    The bank's clean items come from `bank_datasets` (default: `datasets`, where the head fits)."""
    from scipy.stats import spearmanr

    from deepaq.data.teachers import clean_pairs
    from deepaq.models.nmr_head import FILE_NAME, fit_nmr_head
    from deepaq.scoring import Scorer
    from deepaq.scoring.bank import BANK_FILE

    bank_datasets = bank_datasets or datasets
    clean = sorted(p for p in clean_pairs(bank_datasets, bank_split) if p[1] == p[2])
    # a seeded draw (its own generator: the training draw below stays as it was), not the first
    # items by name, which would leave out whole kinds (item ids begin with the kind)
    bank_items = _sample(clean, bank_size, np.random.default_rng([seed, 1]))
    if not bank_items:
        raise ConfigError(f"no clean items in split {bank_split!r} of {', '.join(map(str, bank_datasets))}")
    scorer = Scorer(model, mapping=False, cache_dir=False)
    bank = scorer.make_bank([p[2] for p in bank_items], names=[p[0] for p in bank_items])
    rng = np.random.default_rng(seed)
    train = _sample(clean_pairs(datasets, "train"), max_items, rng)
    validation = _sample(clean_pairs(datasets, "validation"), max(1, max_items // 4), rng)
    x, y = _window_targets(scorer, train)
    dist = scorer.distance
    regions, region_dim = (dist.groups, dist.group_dim) if dist.name == "regions" else (1, int(scorer.model.embed_dim))
    head = fit_nmr_head(x, y, regions=regions, region_dim=region_dim, groups=groups,
                        bank=bank.window_embeddings, ridge=ridge, bank_weight=bank_weight)
    vx, vy = _window_targets(scorer, validation)
    rho = float(spearmanr(head.predict(vx, bank.window_embeddings), vy)[0])
    bank.save(Path(model) / BANK_FILE)
    head.save(Path(model) / FILE_NAME)
    return {"bank": f"{len(bank)} clean items of split {bank_split!r} ({bank.fingerprint})",
            "train windows": len(y), "validation windows": len(vy),
            "validation Spearman (predicted vs full-reference distance)": round(rho, 4),
            "groups": ",".join(groups), "ridge": ridge, "bank weight": bank_weight, "seed": seed}
