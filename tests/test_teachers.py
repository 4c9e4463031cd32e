"""Teacher labels of a built dataset (real codecs, real PEAQ) and their use in training batches."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
import soundfile as sf
import torch

from deepaq.data.build import BuildConfig, build_dataset
from deepaq.data.dataset import ManifestDataset, collate
from deepaq.data.teachers import label_dataset, read_teacher_labels, teacher_file
from deepaq.errors import ConfigError
from deepaq.losses import deepaq_loss


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    rng = np.random.default_rng(0)
    corpus = tmp_path_factory.mktemp("corpus")
    t = np.arange(3 * 48000) / 48000
    for k in range(2):
        tone = sum(np.sin(2 * np.pi * 220 * (k + 1) * h * t) / h for h in range(1, 12))
        x = 0.2 * tone / np.abs(tone).max() + 0.01 * rng.standard_normal(t.size)
        sf.write(corpus / f"s{k}.flac", x.astype(np.float32), 48000)
    root = tmp_path_factory.mktemp("dataset")
    config = BuildConfig(clip_seconds=2, max_clips_per_source=1, codecs=("opus",), bitrates=(8, 64), visqol=False,
                         split_ratios=(1, 0, 0))
    build_dataset([corpus], root, config, workers=0)
    return root


def test_peaq_labels_order_quality_and_resume(dataset):
    scored, errors = label_dataset(dataset, "peaq", workers=0, limit=2)
    assert (scored, errors) == (2, 0)
    scored, errors = label_dataset(dataset, "peaq", workers=0)  # resumes: only the rest
    assert (scored, errors) == (4, 0)
    assert label_dataset(dataset, "peaq", workers=0) == (0, 0)
    labels = read_teacher_labels(dataset)
    assert len(labels) == 6
    for clip in {k.split("__")[0] for k in labels}:
        clean, low, high = (labels[f"{clip}__{s}"] for s in ("clean", "opus_8", "opus_64"))
        assert clean["mms_2f"] == 100.0  # self-score: the top of the 2f scale
        assert clean["mms_2f"] >= high["mms_2f"] > low["mms_2f"]
        assert high["odg"] > low["odg"]
        assert math.isfinite(low["AvgModDiff1B"])


def test_torn_row_is_scored_again(dataset):
    label_dataset(dataset, "peaq", workers=0)
    path = teacher_file(dataset, "peaq")
    text = path.read_text().splitlines()
    path.write_text("\n".join(text[:-1] + [text[-1].split(",")[0] + ",12.5"]) + "\n")  # a row cut short
    assert label_dataset(dataset, "peaq", workers=0) == (1, 0)
    assert len(read_teacher_labels(dataset)) == 6


def test_unknown_teacher_is_an_error(dataset):
    with pytest.raises(ConfigError, match="unknown teacher"):
        label_dataset(dataset, "stoi")


@pytest.mark.parametrize("teacher,label", [("pesq", "pesq_wb"), ("visqol_speech", "visqol_speech")])
def test_speech_teachers_label_only_speech_clips(tmp_path, visqol_testdata, teacher, label):
    """PESQ-WB and ViSQOL speech mode label the clips of the corpus' speech kinds (recorded speech
    here) and leave music alone."""
    x, sr = sf.read(visqol_testdata / "CA01_01.wav", dtype="float32")
    (tmp_path / "corpus" / "speech").mkdir(parents=True)
    (tmp_path / "corpus" / "music").mkdir()
    sf.write(tmp_path / "corpus" / "speech" / "ca01.flac", x[: int(2.5 * sr)], sr)
    t = np.arange(int(2.5 * 48000)) / 48000
    sf.write(tmp_path / "corpus" / "music" / "tone.flac", (0.2 * np.sin(2 * np.pi * 440 * t)).astype(np.float32), 48000)
    config = BuildConfig(clip_seconds=2, max_clips_per_source=1, codecs=("opus",), bitrates=(8, 64), visqol=False,
                         split_ratios=(1, 0, 0))
    root = tmp_path / "dataset"
    build_dataset([tmp_path / "corpus"], root, config, workers=0)
    assert label_dataset(root, teacher, workers=0) == (3, 0)  # the speech clip's clean, opus 8 and opus 64
    labels = {k: v[label] for k, v in read_teacher_labels(root).items()}
    assert all(k.startswith("speech-") for k in labels)
    clip = next(iter(labels)).split("__")[0]
    assert labels[f"{clip}__clean"] > labels[f"{clip}__opus_64"] > labels[f"{clip}__opus_8"]


def test_dataset_carries_teacher_labels_into_the_loss(dataset):
    label_dataset(dataset, "peaq", workers=0)
    data = ManifestDataset(dataset, "train", 48000, 2.0, teachers=("mms_2f", "odg"))
    batch = collate([data[i] for i in range(len(data))])
    assert batch["teachers"].shape == (len(data), 2)
    assert torch.isfinite(batch["teachers"]).all()
    assert torch.isnan(batch["visqol"]).all()  # no ViSQOL labels: that term drops out
    emb = torch.randn(len(data), 8, requires_grad=True)
    teachers = {"mms_2f": (batch["teachers"][:, 0], 1.0)}
    loss, parts = deepaq_loss(emb, batch["visqol"], batch["bitrate"], teachers=teachers, bitrate_weight=0.0)
    loss.backward()
    assert parts["loss_mms_2f"] > 0 and emb.grad.abs().sum() > 0
    # the committee of two teachers: one target per item in [0, 1], also read into the fingerprint
    judged = ManifestDataset(dataset, "train", 48000, 2.0, teachers=("mms_2f",), committee=("mms_2f", "odg"))
    committee = collate([judged[i] for i in range(len(judged))])["committee"]
    assert torch.isfinite(committee).all() and 0 <= float(committee.min()) < float(committee.max()) <= 1
    clean = torch.tensor([judged[i]["is_clean"] for i in range(len(judged))])
    assert float(committee[clean].min()) > float(committee[~clean].mean())
    assert judged.fingerprint() != ManifestDataset(dataset, "train", 48000, 2.0, teachers=("mms_2f",)).fingerprint()


def test_two_dataset_folders_share_their_clips(dataset, tmp_path):
    import shutil

    second = tmp_path / "second"
    shutil.copytree(dataset, second)
    one = ManifestDataset(dataset, "train", 48000, 2.0)
    both = ManifestDataset([dataset, second], "train", 48000, 2.0)
    assert sum(both.is_clean) == sum(one.is_clean)  # the clean items are not doubled
    assert len(both) == 2 * len(one) - sum(one.is_clean)
    assert both[len(both) - 1]["waveform"].shape == one[len(one) - 1]["waveform"].shape


def test_labels_from_the_build_journal_before_the_manifest_exists(dataset, tmp_path):
    import shutil

    building = tmp_path / "building"
    shutil.copytree(dataset, building)
    (building / "manifest.parquet").unlink()
    (building / "teacher-peaq.csv").unlink(missing_ok=True)
    journal = building / ".deepaq-build" / "journal.jsonl"
    journal.write_text(journal.read_text() + '{"kind": "clip", "rows": [')  # a record still being written
    assert label_dataset(building, "peaq", workers=0) == (6, 0)
    label_dataset(dataset, "peaq", workers=0)
    assert read_teacher_labels(building).keys() == read_teacher_labels(dataset).keys()


def test_training_with_teachers_over_two_folders_ships_a_quality_mapping(tmp_path):
    """The 0.3 recipe end to end, small: PEAQ teacher labels on two dataset folders of one
    corpus, mixed-clip batches, bitrate within codecs, selection by teacher, quality mapping."""
    from deepaq.mapping import Mapping
    from deepaq.scoring import Scorer
    from deepaq.train import merge_config, train

    rng = np.random.default_rng(1)
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    t = np.arange(2 * 48000) / 48000
    for k in range(6):
        tone = sum(np.sin(2 * np.pi * 150 * (k + 2) * h * t + h) / h for h in range(1, 15))
        sf.write(corpus / f"s{k}.flac", (0.2 * tone / np.abs(tone).max() + 0.01 * rng.standard_normal(t.size)).astype(np.float32), 48000)
    grid = BuildConfig(clip_seconds=1.5, max_clips_per_source=1, codecs=("opus", "mp3"), bitrates=(8, 64), visqol=False,
                       split_ratios=(0.5, 0.5, 0))
    more = BuildConfig(clip_seconds=1.5, max_clips_per_source=1, codecs=(), visqol=False, split_ratios=(0.5, 0.5, 0),
                       degradations=("noise_white", "bandlimit"), per_clip=2)
    roots = [tmp_path / "grid", tmp_path / "more"]
    for root, config in zip(roots, (grid, more)):
        build_dataset([corpus], root, config, workers=0)
        label_dataset(root, "peaq", workers=0)
    config = merge_config({
        "model": {"backbone": "compact", "weights": "", "backbone_config": {"hidden": 16, "blocks": 2, "dilations": [1, 2],
                                                             "downsample_after": [1], "n_bands": 40},
                  "embed_dim": 8, "finetune": "full", "model_id": "deepaq-teacher-test", "window_overlap": 0.0},
        "data": {"root": [str(r) for r in roots], "window_seconds": 1.5, "random_crop": False, "clips_per_batch": 2,
                 "items_per_clip": 4, "num_workers": 0},
        "loss": {"teachers": {"mms_2f": 1.0}, "bitrate_groups": "codec"},
        "optim": {"lr": 3e-3},
        "train": {"max_epochs": 2, "precision": "fp32", "select": "teachers", "quality_scale": "mms_2f"},
    })
    state = train(config, tmp_path / "run")
    assert state["step"] > 0 and math.isfinite(state["best"])
    best = tmp_path / "run" / "checkpoints" / "best"
    mapping = Mapping.load(best / "mapping.json")
    assert mapping(0.0) > mapping(100.0)
    scorer = Scorer(best, cache_dir=False)  # the shipped mapping is used by default: quality on the 2f scale
    clean = next((roots[0] / "audio").iterdir())
    result = scorer.score(reference=clean / "clean.flac", degraded=clean / "opus_8.flac")
    assert 0.0 <= result.quality <= 100.0

    # the trained model's NMR head and bank, and a quantile mapping onto the teacher, from the same folders
    from deepaq.cli import main
    from deepaq.data.nmr_fit import fit_model_nmr

    report = fit_model_nmr(best, roots, bank_split="validation", bank_size=2, max_items=40)
    assert report["train windows"] > 0 and "2 clean items" in report["bank"]
    nmr = Scorer(best, cache_dir=False).score(degraded=clean / "opus_8.flac", nmr_bank="default")
    assert nmr.mode == "nmr" and nmr.nmr_head and 0.0 <= nmr.quality <= 100.0
    # the bank from other folders than the head's: its items are the "more" folder's clean ones
    from deepaq.scoring.bank import EmbeddingBank

    fit_model_nmr(best, roots[:1], bank_split="validation", bank_size=2, max_items=20, bank_datasets=roots[1:])
    more_items = set(pd.read_parquet(roots[1] / "manifest.parquet").item_id)
    assert set(EmbeddingBank.load(best / "bank.safetensors").names) <= more_items
    assert main(["calibrate", "--dataset", ",".join(map(str, roots)), "--kind", "quantile", "--model", str(best),
                 "-o", str(tmp_path / "q.json")]) == 0
    quantile = Mapping.load(tmp_path / "q.json")
    assert quantile.kind == "quantile" and quantile(0.0) == pytest.approx(100.0)
