"""Time parts of a window (deepaq.models.pooling): every valid frame in exactly one part,
parts in time order and of nearly equal length, padding never used."""

from __future__ import annotations

import numpy as np
import pytest

from deepaq.errors import ModelError
from deepaq.models.pooling import segment_count, segment_weights


@pytest.mark.parametrize("valid, parts", [(75, 4), (76, 1), (10, 3), (7, 7)])
def test_parts_cover_the_valid_frames_once_in_order(valid, parts):
    w = segment_weights(np.array([valid]), 80, parts)[0]
    assert w.shape == (parts, 80)
    np.testing.assert_allclose(w.sum(axis=1), 1.0, rtol=1e-6)  # each part an average
    used = w > 0
    assert not used[:, valid:].any()  # padding frames never count
    assert (used.sum(axis=0)[:valid] == 1).all()  # every valid frame in one part
    starts = [int(np.flatnonzero(row)[0]) for row in used]
    assert starts == sorted(starts) and starts[0] == 0
    sizes = used.sum(axis=1)
    assert sizes.max() - sizes.min() <= 1


def test_fewer_frames_than_parts_reuse_frames_instead_of_empty_parts():
    w = segment_weights(np.array([2]), 5, 4)[0]
    assert (w.sum(axis=1) > 0.99).all() and not (w[:, 2:] > 0).any()


@pytest.mark.parametrize("bad", [0, -1, 1.5, "2", True])
def test_segment_count_rejects_what_is_not_a_positive_integer(bad):
    with pytest.raises(ModelError, match="segments"):
        segment_count({"segments": bad})
    assert segment_count({}) == 1


def test_a_model_folder_with_bad_segments_is_refused_naming_its_config(tmp_path):
    import json
    import shutil
    from pathlib import Path

    from deepaq.models import load_numpy_model

    folder = tmp_path / "m"
    shutil.copytree(Path(__file__).resolve().parents[1] / "src" / "deepaq" / "weights" / "deepaq-compact", folder)
    config = json.loads((folder / "config.json").read_text())
    config["info"]["segments"] = 0
    (folder / "config.json").write_text(json.dumps(config))
    with pytest.raises(ModelError, match=r"config\.json: model segments must be a positive integer"):
        load_numpy_model(folder)
