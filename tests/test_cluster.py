"""`--engine ray` on a real two-node Ray cluster started on this machine (`pytest -m cluster`).

The module's fixture starts a head (`ray start --head`, 1 CPU) and a second node (`ray start
--address`, 1 CPU, its own temp dir so its raylet can be told apart), runs `deepaq label`,
`build-data`, `score` (pairs, folders, NMR) and `evaluate` on it as a user would (in
subprocesses), and compares every row with the local engine's. The fault tests kill the
second node's raylet while it runs a task (the job must still finish, with the same rows)
and kill the driver with SIGKILL mid-job (the same command run again must finish with no
item lost or duplicated). Without an address, a job starts (and stops) a Ray of its own.
Afterwards the fixture kills exactly the processes of its own cluster.
"""

from __future__ import annotations

import ast
import csv
import json
import math
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from deepaq.cli import main

ray = pytest.importorskip("ray", reason="Ray is not installed (pip install 'deepaq[cluster]'): cluster tests skipped")

pytestmark = pytest.mark.cluster

TEST_DATA = Path(__file__).resolve().parent / "data" / "codecs"
BIN = Path(sys.executable).parent
# token authentication, as Ray recommends, with a token of this test run's own
RAY_ENV = {**os.environ, "RAY_USAGE_STATS_ENABLED": "0", "PYTHONUNBUFFERED": "1", "RAY_AUTH_MODE": "token",
           "RAY_AUTH_TOKEN": os.urandom(16).hex()}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _children(pid: int) -> list[int]:
    """Every descendant of `pid` (from /proc)."""
    parents: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            parents.setdefault(ppid, []).append(int(entry.name))
    found, todo = [], [pid]
    while todo:
        for child in parents.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


def _pids_with(text: str) -> list[int]:
    return [int(p.name) for p in Path("/proc").iterdir() if p.name.isdigit() and text in _cmdline(int(p.name))]


class Cluster:
    """A head and a second node on this machine, each with 1 CPU and its own temp dir."""

    def __init__(self) -> None:
        self.port = _free_port()
        self.address = f"127.0.0.1:{self.port}"
        self.temp_dirs: list[str] = []

    def start(self) -> None:
        # the nodes get their own loopback addresses, so Ray sees two machines and the driver
        # (which joins 127.0.0.1) always attaches to the head, never to the node that is killed
        self._start("--head", "--node-ip-address=127.0.0.1", f"--port={self.port}",
                    f"--ray-client-server-port={_free_port()}", f"--dashboard-port={_free_port()}",
                    "--include-dashboard=false")
        self.add_node()

    def _start(self, *args: str) -> str:
        temp = tempfile.mkdtemp(prefix="dqray", dir="/tmp")  # short: raylet socket paths are limited
        self.temp_dirs.append(temp)
        subprocess.run([str(BIN / "ray"), "start", *args, "--num-cpus=1", f"--temp-dir={temp}",
                        "--object-store-memory=100000000", f"--dashboard-agent-listen-port={_free_port()}",
                        "--disable-usage-stats"], env=RAY_ENV, check=True, capture_output=True, timeout=120, cwd="/")
        return temp

    def add_node(self) -> None:
        self.node_dir = self._start(f"--address={self.address}", "--node-ip-address=127.0.0.2")
        self._wait_for_cpus(2)

    def node_raylet(self) -> int | None:
        """The second node's raylet, if alive."""
        pids = [p for p in _pids_with(self.node_dir) if "raylet/raylet" in _cmdline(p)]
        return pids[0] if pids else None

    def ensure_two_nodes(self) -> None:
        if self.node_raylet() is None:
            self.add_node()

    def _wait_for_cpus(self, n: int) -> None:
        code = ("import ray, time; ray.init(address=%r, logging_level='ERROR');"
                "t = time.time()\n"
                "while ray.cluster_resources().get('CPU', 0) < %d and time.time() - t < 60: time.sleep(0.2)\n"
                "print('CPUS', ray.cluster_resources().get('CPU', 0))") % (self.address, n)
        out = subprocess.run([sys.executable, "-c", code], env=RAY_ENV, capture_output=True, text=True, timeout=120)
        # Ray may print its own warnings on stdout too (a busy machine: "... the workload."): read our line
        cpus = [line.split()[1] for line in out.stdout.splitlines() if line.startswith("CPUS ")]
        assert cpus and float(cpus[-1]) >= n, out.stdout[-2000:] + out.stderr[-2000:]

    def stop(self) -> None:
        """Kill this cluster's processes only: those naming its temp dirs or port, and their children."""
        pids = {p for key in [*self.temp_dirs, f":{self.port}"] for p in _pids_with(key)} - {os.getpid()}
        for pid in list(pids):
            pids.update(_children(pid))
        for pid in pids:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        for temp in self.temp_dirs:
            shutil.rmtree(temp, ignore_errors=True)


@pytest.fixture(scope="module")
def cluster():
    c = Cluster()
    try:
        c.start()
        yield c
    finally:
        c.stop()


def deepaq(*args, check: bool = True, cwd: Path | None = None) -> subprocess.CompletedProcess:
    """Run the `deepaq` CLI in a new process, as a user would."""
    done = subprocess.run([str(BIN / "deepaq"), *map(str, args)], env=RAY_ENV, capture_output=True, text=True,
                          timeout=600, cwd=cwd)
    if check:
        assert done.returncode in (0, 1), done.stderr[-3000:]
    return done


def on_ray(cluster, *args, cwd: Path | None = None) -> subprocess.CompletedProcess:
    return deepaq(*args, "--engine", "ray", "--ray-address", cluster.address, cwd=cwd)


# ---------------------------------------------------------------- real audio, short


def _clip(name: str, seconds: float) -> np.ndarray:
    x, sr = sf.read(TEST_DATA / name, dtype="float32", always_2d=True)
    assert sr == 48000
    return x[: int(seconds * sr)].T


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> Path:
    """Reference clips (1.2 s of real music), Opus/MP3 copies, a pairs CSV with a bad row."""
    from deepaq.codecs import degrade

    root = tmp_path_factory.mktemp("corpus")
    for sub in ("clean", "coded", "byname", "bank"):
        (root / sub).mkdir()
    rows = []
    for name in sorted(p.name for p in TEST_DATA.glob("*.flac")):
        stem = name.split("48")[0]
        x = _clip(name, 1.2)
        sf.write(root / "clean" / f"{stem}.flac", x.T, 48000)
        for codec, kbps in (("opus", 24), ("mp3", 64), ("opus", 64)):
            deg = f"{stem}_{codec}{kbps}.flac"
            sf.write(root / "coded" / deg, degrade(x, 48000, codec, kbps).T, 48000)
            rows.append((f"{stem}_{codec}{kbps}", f"clean/{stem}.flac", f"coded/{deg}", kbps))
        shutil.copy(root / "coded" / f"{stem}_opus24.flac", root / "byname" / f"{stem}.flac")
    sf.write(root / "bank" / "other.flac", _clip("guitar48_stereo_1-4s.flac", 3.0)[:, 48000:].T, 48000)
    rows.append(("bad", "clean/castanets.flac", "coded/missing.flac", 32))
    with open(root / "pairs.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["id", "reference", "degraded", "bitrate_kbps"])
        w.writerows(rows)
    return root


def _rows(path: Path) -> dict[str, dict[str, str]]:
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f))
    ids = [r.get("id") or r.get("item_id") for r in rows]
    assert len(ids) == len(set(ids)), f"{path}: duplicate rows"
    return dict(zip(ids, rows))


def _same_value(va: str, vb: str, tol: float = 1e-9) -> bool:
    try:
        fa, fb = float(va), float(vb)
    except ValueError:
        return va == vb
    return (math.isnan(fa) and math.isnan(fb)) or fa == fb or abs(fa - fb) <= tol


def assert_same_rows(a: Path, b: Path) -> None:
    """The same rows (by id, in any order), text equal, numbers within 1e-9."""
    rows_a, rows_b = _rows(a), _rows(b)
    assert rows_a.keys() == rows_b.keys()
    for key, ra in rows_a.items():
        rb = rows_b[key]
        assert ra.keys() == rb.keys()
        for col, va in ra.items():
            assert _same_value(va, rb[col]), (key, col, va, rb[col])


def assert_same_lines(a: Path, b: Path) -> None:
    """The same CSV lines in the same order, numbers within 1e-9."""
    with open(a, newline="") as fa, open(b, newline="") as fb:
        lines_a, lines_b = list(csv.reader(fa)), list(csv.reader(fb))
    assert len(lines_a) == len(lines_b) > 1
    for la, lb in zip(lines_a, lines_b):
        assert len(la) == len(lb) and all(_same_value(x, y) for x, y in zip(la, lb)), (la, lb)


@pytest.fixture(scope="module")
def many_pairs(corpus) -> Path:
    """The pairs CSV twice over under new ids (26 pairs, 2 bad): long enough to interrupt."""
    with open(corpus / "pairs.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    path = corpus / "many.csv"
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["id", "reference", "degraded", "bitrate_kbps"])
        for k in range(2):
            for r in rows:
                w.writerow([f"{r['id']}#{k}", r["reference"], r["degraded"], r["bitrate_kbps"]])
    return path


@pytest.fixture(scope="module")
def local_labels(many_pairs, tmp_path_factory) -> Path:
    """`deepaq label` of `many_pairs` on the local engine."""
    out = tmp_path_factory.mktemp("local-labels") / "labels.csv"
    assert main(["label", str(many_pairs), "-o", str(out), "--workers", "2"]) == 0
    return out


BUILD = ["--clip-seconds", "1", "--max-clips", "1", "--codecs", "opus,mp3", "--bitrates", "24,64", "--csv"]


@pytest.fixture(scope="module")
def local_build(corpus, tmp_path_factory) -> Path:
    """`deepaq build-data` of the clean clips on the local engine (4 clips x 5 items)."""
    out = tmp_path_factory.mktemp("local-build") / "dataset"
    assert main(["build-data", str(corpus / "clean"), *BUILD, "-o", str(out), "--workers", "2"]) == 0
    return out


# ---------------------------------------------------------------- same results as the local engine


def test_label_on_two_nodes_equals_local(cluster, many_pairs, local_labels, tmp_path):
    cluster.ensure_two_nodes()
    remote = tmp_path / "ray.csv"
    done = on_ray(cluster, "label", many_pairs, "-o", remote)
    assert done.returncode == 0, done.stderr[-3000:]
    assert_same_rows(local_labels, remote)
    assert local_labels.read_text().splitlines()[0] == remote.read_text().splitlines()[0]
    rows = _rows(remote)
    assert "file not found" in rows["bad#0"]["error"] and rows["bad#0"]["visqol_mos"] == "nan"
    assert all(float(r["visqol_mos"]) > 1 for k, r in rows.items() if not k.startswith("bad"))


def test_build_data_on_two_nodes_equals_local(cluster, corpus, local_build, tmp_path):
    cluster.ensure_two_nodes()
    done = on_ray(cluster, "build-data", corpus / "clean", *BUILD, "-o", tmp_path / "ray")
    assert done.returncode == 0, done.stderr[-3000:]
    local, remote = _rows(local_build / "manifest.csv"), _rows(tmp_path / "ray" / "manifest.csv")
    assert len(local) == 20  # 4 clips x (clean + 2 codecs x 2 bitrates)
    assert_same_rows(local_build / "manifest.csv", tmp_path / "ray" / "manifest.csv")
    for item in remote.values():  # the workers wrote the same audio
        a, _ = sf.read(local_build / item["path"])
        b, _ = sf.read(tmp_path / "ray" / item["path"])
        assert np.array_equal(a, b), item["path"]


@pytest.mark.parametrize("mode", ["pairs", "folders", "nmr"])
def test_score_on_two_nodes_equals_local(cluster, corpus, tmp_path, mode):
    cluster.ensure_two_nodes()
    if mode == "pairs":  # relative paths, from a folder the cluster was not started in
        args = ["--pairs", "pairs.csv"]
    elif mode == "folders":
        args = ["--ref-dir", corpus / "clean", "--deg-dir", corpus / "byname"]
    else:
        args = ["--nmr-dir", corpus / "bank", corpus / "coded", "--nmr-matrix", tmp_path / "OUT-matrix.csv"]
    outputs = {}
    for engine in ("local", "ray"):
        out = tmp_path / f"{engine}.csv"
        run_args = [str(a).replace("OUT", engine) for a in args]
        common = ["score", *run_args, "--out", out, "--windows", tmp_path / f"{engine}-windows.csv", "--no-cache"]
        done = deepaq(*common, cwd=corpus) if engine == "local" else on_ray(cluster, *common, cwd=corpus)
        assert done.returncode == (1 if mode == "pairs" else 0), done.stderr[-3000:]  # pairs: one bad row
        outputs[engine] = out
    # the same rows in the same order (the Ray engine yields results in job order)
    assert_same_lines(outputs["local"], outputs["ray"])
    assert_same_lines(tmp_path / "local-windows.csv", tmp_path / "ray-windows.csv")
    if mode == "nmr":
        assert_same_lines(tmp_path / "local-matrix.csv", tmp_path / "ray-matrix.csv")
    rows = _rows(outputs["ray"])
    assert sum(1 for r in rows.values() if r["error"]) == (1 if mode == "pairs" else 0)


def test_without_an_address_the_job_starts_its_own_ray(corpus, tmp_path):
    env = {k: v for k, v in RAY_ENV.items() if k != "RAY_ADDRESS"}
    outputs = []
    for engine in ("local", "ray"):
        out = tmp_path / f"{engine}.csv"
        done = subprocess.run([str(BIN / "deepaq"), "score", "--pairs", str(corpus / "pairs.csv"), "--out", str(out),
                               "--no-cache", "--engine", engine], env=env, capture_output=True, text=True, timeout=600)
        assert done.returncode == 1, done.stderr[-3000:]  # the one bad row
        outputs.append(out)
    assert_same_lines(*outputs)


def test_evaluate_on_two_nodes_equals_local(cluster, corpus, tmp_path):
    cluster.ensure_two_nodes()
    manifest = tmp_path / "test.csv"
    with open(corpus / "pairs.csv", newline="") as f, open(manifest, "w", newline="") as out:
        w = csv.writer(out)
        w.writerow(["test", "item", "condition", "reference", "degraded", "score"])
        for r in csv.DictReader(f):
            if r["id"] != "bad":
                item, cond = r["id"].rsplit("_", 1)
                w.writerow(["T", item, cond, corpus / r["reference"], corpus / r["degraded"], r["bitrate_kbps"]])
    args = ["evaluate", manifest, "--metrics", "deepaq", "--bootstrap", "50", "--folds", "2"]
    local = deepaq(*args, "--jobs", "2", "--cache-dir", tmp_path / "c1", "--out", tmp_path / "local")
    remote = on_ray(cluster, *args, "--cache-dir", tmp_path / "c2", "--out", tmp_path / "ray")
    assert local.returncode == 0 and remote.returncode == 0, remote.stderr[-3000:]
    assert "deepaq: 12 computed" in remote.stdout
    assert_same_lines(tmp_path / "local" / "scores.csv", tmp_path / "ray" / "scores.csv")


# ---------------------------------------------------------------- faults


def _wait_until(condition, what: str, timeout: float = 120) -> None:
    end = time.time() + timeout
    while not condition():
        assert time.time() < end, f"timed out waiting for {what}"
        time.sleep(0.05)


def _data_rows(path: Path, *, finished: bool = False) -> int:
    """Rows in a label CSV (with `finished`: complete rows without an error, which a rerun keeps)."""
    if not path.exists():
        return 0
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f))
    if finished:
        rows = [r for r in rows if None not in r.values() and r["visqol_version"] and not r["error"]]
    return len(rows)


def test_losing_a_node_mid_job_reruns_its_tasks_elsewhere(cluster, many_pairs, local_labels, tmp_path):
    cluster.ensure_two_nodes()
    out = tmp_path / "ray.csv"
    raylet = cluster.node_raylet()
    job = subprocess.Popen([str(BIN / "deepaq"), "label", str(many_pairs), "-o", str(out), "--engine", "ray",
                            "--ray-address", cluster.address], env=RAY_ENV, stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, text=True)
    # kill the second node while one of its workers is running a chunk of pairs
    _wait_until(lambda: any("ray::_run_chunk" in _cmdline(p) for p in _children(raylet)), "a task on the second node")
    os.kill(raylet, signal.SIGKILL)
    stdout, stderr = job.communicate(timeout=300)
    assert job.returncode == 0, stderr[-3000:]
    assert_same_rows(local_labels, out)
    assert cluster.node_raylet() is None


def test_driver_killed_mid_job_resumes_without_loss_or_duplicates(cluster, many_pairs, local_labels, tmp_path):
    cluster.ensure_two_nodes()
    out = tmp_path / "ray.csv"
    total = _data_rows(local_labels)
    command = [str(BIN / "deepaq"), "label", str(many_pairs), "-o", str(out), "--engine", "ray",
               "--ray-address", cluster.address]
    job = subprocess.Popen(command, env=RAY_ENV, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    _wait_until(lambda: _data_rows(out) >= 3, "the first label rows")
    job.send_signal(signal.SIGKILL)
    job.wait()
    kept = _data_rows(out, finished=True)
    assert 3 <= kept < total  # killed mid-job, finished rows kept
    done = subprocess.run(command, env=RAY_ENV, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    assert f"{total - kept} pairs scored now" in done.stdout  # nothing scored twice
    assert_same_rows(local_labels, out)


def test_build_data_driver_killed_mid_job_resumes(cluster, corpus, local_build, tmp_path):
    cluster.ensure_two_nodes()
    journal = tmp_path / "ray" / ".deepaq-build" / "journal.jsonl"

    def clips_done() -> int:
        if not journal.exists():
            return 0
        return sum(1 for line in journal.read_text().splitlines() if '"kind": "clip"' in line)

    command = [str(BIN / "deepaq"), "build-data", str(corpus / "clean"), *BUILD, "-o", str(tmp_path / "ray"),
               "--engine", "ray", "--ray-address", cluster.address]
    job = subprocess.Popen(command, env=RAY_ENV, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    _wait_until(lambda: clips_done() >= 1, "the first clip in the journal")
    job.send_signal(signal.SIGKILL)
    job.wait()
    assert 1 <= clips_done() < 4
    done = subprocess.run(command, env=RAY_ENV, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    records = [json.loads(line) for line in journal.read_text().splitlines()]
    clips = [r["clip_id"] for r in records if r["kind"] == "clip"]
    assert len(clips) == len(set(clips)) == 4  # each clip built once
    assert_same_rows(local_build / "manifest.csv", tmp_path / "ray" / "manifest.csv")


CRASHING_JOB = '''
import os, sys
from deepaq.cluster import RayEngine

def square_but_abort_on_three(x):
    if x == 3:
        os.abort()  # as an assertion in native code (an FFmpeg encoder) does, on every retry
    return x * x

if __name__ == "__main__":
    with RayEngine(sys.argv[1]) as engine:
        got = dict(engine.map(square_but_abort_on_three, list(range(8)), desc=None, chunk_size=2,
                              on_crash=lambda task, why: "crashed: " + why))
    print("RESULT", sorted(got.items()))
'''


def test_a_task_that_kills_its_worker_on_every_retry_becomes_on_crash(cluster, tmp_path):
    """Its chunk's other task still gives its result; the crashing one is handed to on_crash."""
    script = tmp_path / "job.py"
    script.write_text(CRASHING_JOB)
    done = subprocess.run([sys.executable, str(script), cluster.address], env=RAY_ENV, capture_output=True,
                          text=True, timeout=600, cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    line = [x for x in done.stdout.splitlines() if x.startswith("RESULT ")][-1]
    got = dict(ast.literal_eval(line[len("RESULT "):]))
    assert got.pop(3).startswith("crashed: its worker process died")
    assert got == {x: x * x for x in range(8) if x != 3}
