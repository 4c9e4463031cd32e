"""The core install (no torch, no extras) scores with the built-in model; scoring never imports
the heavy optional modules; batches on several processes give the same rows and resume.

`make test` runs this file in .venv (everything installed) and in .venv-core (the core install)."""

from __future__ import annotations

import csv
import importlib.util
import io
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import deepaq
from deepaq.audio import read_audio, write_audio
from deepaq.codecs import degrade

ASSET = Path(__file__).resolve().parents[1] / "src" / "deepaq" / "assets" / "loop_compus.flac"
HAS_TORCH = importlib.util.find_spec("torch") is not None
HEAVY = ("torch", "transformers", "peft", "matplotlib", "pandas", "ray", "deepaq.models.hf")


def cli(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    proc = subprocess.run([sys.executable, "-m", "deepaq", *args], capture_output=True, text=True)
    if check and proc.returncode != 0:
        raise AssertionError(proc.stderr[-3000:])
    return proc


@pytest.fixture(scope="module")
def pair(tmp_path_factory) -> tuple[Path, Path]:
    """The bundled real clip and an MP3 64 kbps copy of it (PyAV's encoder)."""
    folder = tmp_path_factory.mktemp("pair")
    x, sr = read_audio(ASSET)
    write_audio(folder / "deg.wav", degrade(x, sr, "mp3", 64), sr)
    return ASSET, folder / "deg.wav"


@pytest.fixture(autouse=True)
def cache_env(tmp_path, monkeypatch):
    monkeypatch.setenv("DEEPAQ_CACHE_DIR", str(tmp_path / "cache"))


def test_score_imports_no_heavy_module_and_prints_a_readable_block(pair):
    code = ("import sys; from deepaq.cli import main; rc = main(sys.argv[1:]); "
            f"print('loaded:', *[m for m in {HEAVY!r} if m in sys.modules]); sys.exit(rc)")
    proc = subprocess.run([sys.executable, "-c", code, "score", str(pair[0]), str(pair[1])],
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert lines[-1] == "loaded:"  # none of them
    block = dict(line.split(None, 1) for line in lines[:-1])
    shipped = json.loads((Path(deepaq.__file__).parent / "weights" / "deepaq-compact" / "config.json").read_text())
    assert block["model"] == f"deepaq-compact {shipped['version']}" and float(block["distance"].split()[0]) > 0
    assert 0 <= float(block["quality"].split()[0]) <= 100  # the mapping shipped with the weights
    assert block["delay"].endswith("degraded behind the reference)")


def test_batch_on_two_processes_gives_the_same_rows_and_resumes(pair, tmp_path):
    ref, deg = pair
    x, sr = read_audio(deg)
    write_audio(tmp_path / "quiet.wav", x * 0.5, sr)
    (tmp_path / "bad.wav").write_text("not audio")
    rows = ["id,reference,degraded"] + [f"p{i},{ref},{d}" for i, d in
                                        enumerate([deg, tmp_path / "quiet.wav", tmp_path / "bad.wav", ref] * 2)]
    (tmp_path / "pairs.csv").write_text("\n".join(rows) + "\n")
    one, two = tmp_path / "one.csv", tmp_path / "two.csv"
    assert cli("score", "--pairs", str(tmp_path / "pairs.csv"), "--out", str(one), "--processes", "1",
               check=False).returncode == 1  # the bad item fails, the rest is scored
    assert cli("score", "--pairs", str(tmp_path / "pairs.csv"), "--out", str(two), "--processes", "2",
               check=False).returncode == 1
    a, b = (list(csv.DictReader(io.StringIO(p.read_text()))) for p in (one, two))
    assert [r["id"] for r in b] == [f"p{i}" for i in range(8)]
    assert a == b  # same values to the last digit, same order
    assert "bad.wav" in b[2]["error"] and float(b[3]["distance"]) == pytest.approx(0, abs=1e-6)
    # resume a run cut after some rows (any rows: resume goes by id) on two processes
    lines = two.read_text().splitlines(keepends=True)
    two.write_text("".join([lines[0], lines[5], lines[2]]))
    cli("score", "--pairs", str(tmp_path / "pairs.csv"), "--out", str(two), "--processes", "2", "--resume",
        check=False)
    resumed = list(csv.DictReader(io.StringIO(two.read_text())))
    assert sorted(r["id"] for r in resumed) == [f"p{i}" for i in range(8)]
    assert {r["id"]: r for r in resumed} == {r["id"]: r for r in a}


def test_threads_option_gives_the_same_score(pair):
    one = cli("score", str(pair[0]), str(pair[1]), "--format", "csv", "--no-cache", "--threads", "1")
    two = cli("score", str(pair[0]), str(pair[1]), "--format", "csv", "--no-cache", "--threads", "2")
    d1, d2 = (float(next(csv.DictReader(io.StringIO(p.stdout)))["distance"]) for p in (one, two))
    assert d1 == pytest.approx(d2, rel=1e-6)


@pytest.mark.parametrize("before_numpy", [True, False])
def test_set_threads_limits_the_blas_pool(before_numpy):
    """Through the environment before numpy is imported, through threadpoolctl after."""
    steps = ["from deepaq.threads import set_threads; set_threads(1)", "import numpy"]
    code = "; ".join([*(steps if before_numpy else steps[::-1]),
                      "from threadpoolctl import threadpool_info",
                      "print(sorted({i['num_threads'] for i in threadpool_info()}))"])
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[1]"


@pytest.mark.skipif(HAS_TORCH, reason="checks a core install, where torch is absent")
def test_torch_features_name_the_extra_on_a_core_install(pair, tmp_path):
    proc = cli("score", str(pair[0]), str(pair[1]), "--backend", "torch", check=False)
    assert proc.returncode == 1 and "pip install 'deepaq[train]'" in proc.stderr
    (tmp_path / "c.toml").write_text("[model]\nbackbone = 'compact'\n")
    proc = cli("train", "--config", str(tmp_path / "c.toml"), "--data", str(tmp_path), check=False)
    assert proc.returncode == 1 and "pip install 'deepaq[train]'" in proc.stderr
    from deepaq.errors import MissingExtraError
    from deepaq.scoring import Scorer

    with pytest.raises(MissingExtraError, match=r"deepaq\[train\]"):
        Scorer(backend="torch", cache_dir=False)


@pytest.mark.skipif(not HAS_TORCH, reason="the torch backbones are in deepaq[train]")
def test_backbone_registry_imports_only_the_backbone_asked_for():
    code = ("import sys; from deepaq.models import build_backbone, list_backbones; "
            "names = list_backbones(); build_backbone('compact', {'hidden': 8, 'blocks': 1}); "
            "print(names, 'deepaq.models.hf' in sys.modules, 'transformers' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["['compact',", "'mert',", "'wav2vec2']", "False", "False"]


def test_numpy_embeddings_are_deterministic_across_batch_sizes(pair):
    """Windows embedded alone or in a batch give the same embeddings (no batch effects)."""
    from deepaq.scoring import Scorer

    a = Scorer(cache_dir=False, batch_size=1).embed(pair[0]).windows
    b = Scorer(cache_dir=False, batch_size=8).embed(pair[0]).windows
    assert a.shape == b.shape and np.abs(a - b).max() <= 1e-5 * np.abs(a).max()


def test_evaluate_report_has_figures_only_where_matplotlib_is(tmp_path):
    """`deepaq evaluate` writes report.md and report.html on a core install too: without
    matplotlib they have no figures and say so; with it, the scatter and condition plots."""
    x, sr = read_audio(ASSET)
    rng = np.random.default_rng(0)
    rows = []
    for item in range(3):
        clean = np.ascontiguousarray(x[:, item * sr : (item + 2) * sr])
        write_audio(tmp_path / f"ref{item}.wav", clean, sr)
        for cond, noise, score in (("quiet", 0.002, 4.5), ("loud", 0.05, 1.5 + 0.2 * item)):
            deg = clean + noise * rng.standard_normal(clean.shape).astype(np.float32)
            write_audio(tmp_path / f"{cond}{item}.wav", deg, sr)
            rows.append(["T", f"i{item}", cond, f"ref{item}.wav", f"{cond}{item}.wav", score])
    with open(tmp_path / "manifest.csv", "w", newline="") as f:
        csv.writer(f).writerows([["test", "item", "condition", "reference", "degraded", "score"], *rows])
    out = tmp_path / "report"
    proc = cli("evaluate", str(tmp_path / "manifest.csv"), "--metrics", "sisdr", "--bootstrap", "20",
               "--folds", "2", "--out", str(out))
    md, page = (out / "report.md").read_text(), (out / "report.html").read_text()
    assert "sisdr" in md and "sisdr" in page
    pngs = sorted(p.name for p in out.glob("*.png"))
    if importlib.util.find_spec("matplotlib") is None:
        assert pngs == [] and "No figures: matplotlib is not installed" in proc.stdout
        assert "pip install 'deepaq[plots]'" in md and "deepaq[plots]" in page and "<img" not in page
    else:
        assert pngs == ["conditions_T.png", "scatter_T.png"] and "No figures" not in md + page
        assert "![scatter_T.png](scatter_T.png)" in md and 'src="conditions_T.png"' in page
