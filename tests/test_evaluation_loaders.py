"""Listening-test manifests and the loaders of public layouts (synthetic tables in those layouts)."""

from __future__ import annotations

import csv

import numpy as np
import pytest
from scipy import stats as sps

from deepaq.evaluation.loaders import MushraLayout, load_mushra_csv, load_odaq, load_sebass
from deepaq.evaluation.manifest import ManifestError, read_manifest, write_manifest


def _touch(path):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"RIFF")  # the loaders only check existence; audio is read by the metrics
    return path


def _write_csv(path, header, rows):
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(header)
        w.writerows(rows)
    return path


def test_manifest_resolves_relative_paths_and_optional_columns(tmp_path):
    _touch(tmp_path / "audio" / "ref.wav")
    _touch(tmp_path / "audio" / "deg a.wav")  # a space in the name
    m = _write_csv(tmp_path / "m.csv", ["test", "item", "condition", "reference", "degraded", "score", "ci", "n_listeners"],
                   [["t", "i1", "c1", "audio/ref.wav", "audio/deg a.wav", "71.5", "4.2", "12"],
                    ["t", "i1", "c2", "audio/ref.wav", "audio/ref.wav", "99", "", ""]])
    stimuli = read_manifest(m)
    assert [s.condition for s in stimuli] == ["c1", "c2"]
    assert stimuli[0].degraded == tmp_path / "audio" / "deg a.wav"
    assert (stimuli[0].score, stimuli[0].ci, stimuli[0].n_listeners) == (71.5, 4.2, 12)
    assert stimuli[1].ci is None
    # round trip through write_manifest, written somewhere else
    out = write_manifest(tmp_path / "elsewhere" / "copy.csv", stimuli)
    again = read_manifest(out)
    assert [(s.key, s.reference.resolve(), s.degraded.resolve(), s.score) for s in again] == \
           [(s.key, s.reference.resolve(), s.degraded.resolve(), s.score) for s in stimuli]


def test_manifest_listener_rows_are_averaged_with_a_t_interval(tmp_path):
    _touch(tmp_path / "r.wav")
    _touch(tmp_path / "d.wav")
    ratings = [60, 70, 80, 75]
    m = _write_csv(tmp_path / "m.csv", ["test", "item", "condition", "reference", "degraded", "listener", "score"],
                   [["t", "i", "c", "r.wav", "d.wav", f"L{k}", v] for k, v in enumerate(ratings)])
    (s,) = read_manifest(m)
    assert s.score == pytest.approx(np.mean(ratings))
    assert s.n_listeners == 4
    half = sps.t.ppf(0.975, 3) * np.std(ratings, ddof=1) / 2
    assert s.ci == pytest.approx(half)


@pytest.mark.parametrize(
    "header, row, message",
    [
        (["test", "item", "reference", "degraded", "score"], ["t", "i", "r.wav", "d.wav", "1"], "missing column"),
        (["test", "item", "condition", "reference", "degraded", "score"], ["t", "i", "c", "r.wav", "d.wav", "good"],
         "line 2: column 'score' is not a number"),
        (["test", "item", "condition", "reference", "degraded", "score"], ["t", "i", "c", "r.wav", "d.wav", ""],
         "line 2: column 'score' is empty"),
        (["test", "item", "condition", "reference", "degraded", "score"], ["t", "i", "c", "r.wav", "gone.wav", "3"],
         "1 audio file\\(s\\) do not exist: .*gone.wav"),
    ],
)
def test_manifest_errors_name_the_file_and_the_problem(tmp_path, header, row, message):
    _touch(tmp_path / "r.wav")
    _touch(tmp_path / "d.wav")
    m = _write_csv(tmp_path / "bad.csv", header, [row])
    with pytest.raises(ManifestError, match=message) as info:
        read_manifest(m)
    assert "bad.csv" in str(info.value)


def test_manifest_rejects_duplicates_and_missing_file(tmp_path):
    _touch(tmp_path / "r.wav")
    row = ["t", "i", "c", "r.wav", "r.wav", "3"]
    m = _write_csv(tmp_path / "dup.csv", ["test", "item", "condition", "reference", "degraded", "score"], [row, row])
    with pytest.raises(ManifestError, match="appears twice"):
        read_manifest(m)
    with pytest.raises(ManifestError, match="does not exist"):
        read_manifest(tmp_path / "nope.csv")


def _odaq_xml(subject, trials):
    body = "".join(
        f'<trial trialName="{name}" trialSeconds="60" referencePlays="3">'
        + "".join(f'<testFile fileName="{f}" plays="2" score="{s}"/>' for f, s in files.items())
        + "</trial>"
        for name, files in trials.items())
    return (f'<?xml version="1.0"?><mushra><info subjectName="{subject}" testName="ODAQ" stimuliDirectory="x" '
            f'trialsPerSession="2" testStatus="complete"/>{body}</mushra>')


def test_odaq_loader_reads_xml_results_and_skips_hidden_reference_and_anchors(tmp_path):
    root = tmp_path / "ODAQ_listening_test"
    for trial in ("LP_Item1", "PE_Item2"):
        _touch(root / trial / f"{trial}_reference.wav")
        for cond in ("cond1", "cond2", "lp35", "lp70"):
            _touch(root / trial / f"{trial}_{cond}.wav")
    files = lambda t, a, b: {f"{t}_cond1.wav": a, f"{t}_cond2.wav": b, f"{t}_lp35.wav": 10,  # noqa: E731
                             f"{t}_lp70.wav": 30, f"{t}_reference.wav": 100}  # hidden ref
    (root / "listener1.xml").write_text(_odaq_xml("L1", {"LP_Item1": files("LP_Item1", 80, 40),
                                                          "PE_Item2": files("PE_Item2", 60, 20)}))
    (root / "listener2.xml").write_text(_odaq_xml("L2", {"LP_Item1": files("LP_Item1", 90, 50),
                                                          "PE_Item2": files("PE_Item2", 70, 30)}))
    stimuli = {s.key: s for s in load_odaq(root)}
    assert len(stimuli) == 4
    s = stimuli[("ODAQ", "LP_Item1", "LP_Item1_cond1")]
    assert s.score == 85 and s.n_listeners == 2
    assert s.reference == root / "LP_Item1" / "LP_Item1_reference.wav"
    assert s.degraded == root / "LP_Item1" / "LP_Item1_cond1.wav"
    by_method = load_odaq(root, split_by_method=True, include_anchors=True, include_hidden_reference=True)
    assert {s.test for s in by_method} == {"ODAQ-LP", "ODAQ-PE"}
    assert len(by_method) == 10


def test_odaq_loader_errors(tmp_path):
    with pytest.raises(ManifestError, match="no ODAQ result XML"):
        load_odaq(tmp_path)
    (tmp_path / "bad.xml").write_text("<mushra><trial")
    with pytest.raises(ManifestError, match="bad.xml: not valid XML"):
        load_odaq(tmp_path)
    (tmp_path / "bad.xml").write_text(_odaq_xml("L", {"T_1": {"a.wav": 5}}))
    with pytest.raises(ManifestError, match="trial folder .*T_1 does not exist"):
        load_odaq(tmp_path)


def test_sebass_loader(tmp_path):
    signals = tmp_path / "Signals"
    for cond in ("orig", "Algo8", "Algo21", "anchor"):
        for trial in ("male_inst_sim_1", "female_inst_sim_2"):
            _touch(signals / cond / f"{trial}.wav")
    rows = [["SiSEC08", lis, trial, cond, score]
            for lis, offset in (("Listener_1", 0), ("Listener_2", 10))
            for trial in ("male_inst_sim_1", "female_inst_sim_2")
            for cond, score in (("orig", 100), ("Algo8", 40 + offset), ("Algo21", 20 + offset), ("anchor", 5))]
    table = _write_csv(tmp_path / "SiSEC08.csv", ["Testname", "Listener", "Trial", "Condition", "Ratingscore"], rows)
    stimuli = {s.key: s for s in load_sebass(table, signals)}
    assert set(stimuli) == {("SiSEC08", t, c) for t in ("male_inst_sim_1", "female_inst_sim_2")
                            for c in ("Algo8", "Algo21")}
    s = stimuli[("SiSEC08", "male_inst_sim_1", "Algo8")]
    assert s.score == 45 and s.n_listeners == 2
    assert s.reference == signals / "orig" / "male_inst_sim_1.wav"
    assert s.degraded == signals / "Algo8" / "male_inst_sim_1.wav"
    assert len(load_sebass(table, signals, include_anchors=True, include_hidden_reference=True)) == 8
    (signals / "Algo21" / "female_inst_sim_2.wav").unlink()
    with pytest.raises(ManifestError, match="female_inst_sim_2.wav"):
        load_sebass(table, signals)


def test_generic_mushra_loader_with_webmushra_defaults_and_custom_layout(tmp_path):
    audio = tmp_path / "configs" / "resources" / "audio"
    for trial in ("trial1", "trial2"):
        for cond in ("reference", "C1", "C2", "anchor35"):
            _touch(audio / trial / f"{cond}.wav")
    rows = [["my_test", uuid, trial, cond, score, "3.1", ""]
            for uuid, bias in (("u1", 0), ("u2", 4), ("u3", 8))
            for trial in ("trial1", "trial2")
            for cond, score in (("reference", 100), ("C1", 50 + bias), ("C2", 70 + bias), ("anchor35", 12))]
    table = _write_csv(tmp_path / "mushra.csv", ["session_test_id", "session_uuid", "trial_id", "rating_stimulus",
                                                  "rating_score", "rating_time", "rating_comment"], rows)
    stimuli = {s.key: s for s in load_mushra_csv(table, audio)}
    assert len(stimuli) == 4
    assert stimuli[("my_test", "trial2", "C2")].score == 74
    assert stimuli[("my_test", "trial2", "C2")].reference == audio / "trial2" / "reference.wav"
    # a lab's own export: other column names, flat file names, one test
    flat = tmp_path / "flat"
    for name in ("song_ref.wav", "song_codecA.wav"):
        _touch(flat / name)
    own = _write_csv(tmp_path / "own.csv", ["Subject", "Excerpt", "System", "Grade"],
                     [["s1", "song", "codecA", "55"], ["s2", "song", "codecA", "65"]])
    layout = MushraLayout(listener_column="Subject", item_column="Excerpt", condition_column="System",
                          score_column="Grade", test_column=None, test="lab",
                          reference_template="{item}_ref.wav", degraded_template="{item}_{condition}.wav")
    (s,) = load_mushra_csv(own, flat, layout)
    assert (s.key, s.score, s.degraded) == (("lab", "song", "codecA"), 60, flat / "song_codecA.wav")
    with pytest.raises(ManifestError, match="missing column\\(s\\) session_uuid"):
        load_mushra_csv(own, flat)
    bad = _write_csv(tmp_path / "bad.csv", ["Subject", "Excerpt", "System", "Grade"], [["s1", "song", "codecA", "n/a"]])
    with pytest.raises(ManifestError, match="bad.csv: line 2: score 'n/a' is not a number"):
        load_mushra_csv(bad, flat, layout)


def test_evaluate_cli_reads_a_sebass_layout_of_real_audio(visqol_testdata, tmp_path, capsys):
    """`--format sebass` through the CLI: symlinked real speech files, PEAQ ODG, manifest written."""
    from deepaq.cli import main

    signals = tmp_path / "Signals"
    sources = {"orig": "CA01_01.wav", "AlgoA": "transcoded_CA01_01.wav", "AlgoB": "CA01_01.wav"}
    for cond, name in sources.items():
        for trial in ("speech_1", "speech_2"):
            (signals / cond).mkdir(parents=True, exist_ok=True)
            (signals / cond / f"{trial}.wav").symlink_to(visqol_testdata / name)
    rows = [["Speech", lis, trial, cond, score] for lis in ("L1", "L2") for trial in ("speech_1", "speech_2")
            for cond, score in (("orig", 100), ("AlgoA", 30), ("AlgoB", 95))]
    table = _write_csv(tmp_path / "ratings.csv", ["Testname", "Listener", "Trial", "Condition", "Ratingscore"], rows)
    code = main(["evaluate", str(table), "--format", "sebass", "--audio-root", str(signals), "--metrics", "peaq",
                 "--write-manifest", str(tmp_path / "manifest.csv"), "--bootstrap", "20",
                 "--cache-dir", str(tmp_path / "cache"), "--out", str(tmp_path / "out")])
    assert code == 0, capsys.readouterr()
    stimuli = {s.key: s for s in read_manifest(tmp_path / "manifest.csv")}
    assert set(stimuli) == {("Speech", t, c) for t in ("speech_1", "speech_2") for c in ("AlgoA", "AlgoB")}
    with open(tmp_path / "out" / "scores.csv") as f:
        odg = {(r["item"], r["condition"]): float(r["peaq"]) for r in csv.DictReader(f)}
    assert odg[("speech_1", "AlgoB")] > -0.5  # identical to the reference
    assert odg[("speech_1", "AlgoA")] < odg[("speech_1", "AlgoB")] - 1
