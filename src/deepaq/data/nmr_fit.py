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


def _manifests(datasets: list[Path]):
    """The folders' manifests as one frame, with each item's file path and a per-folder clip key."""
    import pandas as pd

    from deepaq.data.manifest import read_manifest

    frames = []
    for root in datasets:
        frame = read_manifest(root)
        frame["file"] = [str(root / p) for p in frame["path"]]
        frame["clip_key"] = [f"{root}|{c}" for c in frame["clip_id"]]
        frames.append(frame)
    if not frames:
        raise ConfigError("fit-nmr needs at least one dataset folder")
    return pd.concat(frames, ignore_index=True)


def _window_targets(scorer, items, clean_file: dict[str, str]) -> tuple[np.ndarray, np.ndarray]:
    """Window embeddings of `items` and each window's full-reference distance to its clean item."""
    from tqdm import tqdm

    cache: dict[str, np.ndarray] = {}
    rows, targets = [], []
    for file, key in tqdm(list(zip(items["file"], items["clip_key"])), desc="nmr items", unit="item"):
        if key not in cache:
            cache[key] = scorer.embed(clean_file[key]).windows[:, 0]
        deg, ref = scorer.embed(file).windows[:, 0], cache[key]
        n = min(len(deg), len(ref))
        rows.append(deg[:n])
        targets.append(scorer.distance(ref[:n] - deg[:n], np.linalg.norm))
    return np.concatenate(rows), np.concatenate(targets)


def fit_model_nmr(model: Path, datasets: list[Path], *, bank_split: str = "test", bank_size: int = 82,
                  groups: tuple[str, ...] = ("part_mean", "bank"), ridge: float = 1e-2, bank_weight: float = 0.5,
                  max_items: int = 12000, seed: int = 0) -> dict:
    """Write `model/bank.safetensors` and `model/nmr_head.safetensors`; return what was measured."""
    from scipy.stats import spearmanr

    from deepaq.models.nmr_head import FILE_NAME, fit_nmr_head
    from deepaq.scoring import Scorer

    items = _manifests(datasets)
    clean = items[items["family"] == "clean"]
    clean_file = dict(zip(clean["clip_key"], clean["file"]))
    items = items[items["clip_key"].isin(clean_file)]
    # a clip's clean item is the same audio in every folder built from the same corpus: once in the bank
    bank_items = clean[clean["split"] == bank_split].drop_duplicates("clip_id").sort_values("item_id").head(bank_size)
    if bank_items.empty:
        raise ConfigError(f"no clean items in split {bank_split!r} of {', '.join(map(str, datasets))}")
    scorer = Scorer(model, mapping=False, cache_dir=False)
    bank = scorer.make_bank(list(bank_items["file"]), names=list(bank_items["item_id"]))
    rng = np.random.default_rng(seed)
    train = items[items["split"] == "train"]
    train = train.iloc[np.sort(rng.permutation(len(train))[:max_items])]
    validation = items[items["split"] == "validation"]
    validation = validation.iloc[np.sort(rng.permutation(len(validation))[:max(1, max_items // 4)])]
    x, y = _window_targets(scorer, train, clean_file)
    dist = scorer.distance
    regions, region_dim = (dist.groups, dist.group_dim) if dist.name == "regions" else (1, int(scorer.model.embed_dim))
    head = fit_nmr_head(x, y, regions=regions, region_dim=region_dim, groups=groups,
                        bank=bank.window_embeddings, ridge=ridge, bank_weight=bank_weight)
    vx, vy = _window_targets(scorer, validation, clean_file)
    rho = float(spearmanr(head.predict(vx, bank.window_embeddings), vy)[0])
    bank.save(Path(model) / "bank.safetensors")
    head.save(Path(model) / FILE_NAME)
    return {"bank": f"{len(bank)} clean items of split {bank_split!r} ({bank.fingerprint})",
            "train windows": len(y), "validation windows": len(vy),
            "validation Spearman (predicted vs full-reference distance)": round(rho, 4),
            "groups": ",".join(groups), "ridge": ridge, "bank weight": bank_weight}
