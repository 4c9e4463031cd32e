"""deepaq.memory: freed memory stays in the process, so the next item faults in no fresh pages."""

from __future__ import annotations

import platform
import subprocess
import sys

import pytest

from conftest import save_tiny_model

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux") or platform.libc_ver()[0] != "glibc",
                                reason="the policy is glibc's mallopt")

# A 40 MB array is above glibc's largest automatic mmap threshold (32 MB): by default each one
# is mapped afresh and faults in its pages: ~9,800 of 4 kB, or at least 20 of 2 MB where numpy
# gets huge pages (57-568 here); kept, the second one reuses the first one's memory.
SCRIPT = """
import resource, sys
import numpy as np
if sys.argv[1] == "scorer":
    from deepaq.scoring import Scorer
    Scorer(sys.argv[2], cache_dir=False, keep_memory=sys.argv[3] == "keep")
elif sys.argv[3] == "keep":
    from deepaq.memory import keep_freed_memory
    assert keep_freed_memory() and keep_freed_memory()  # idempotent
def faults_of_a_fresh_array():
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    np.ones(10_000_000, np.float32)
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before
faults_of_a_fresh_array()
print(faults_of_a_fresh_array())
"""


def _faults(*args: str) -> int:
    out = subprocess.run([sys.executable, "-c", SCRIPT, *args], capture_output=True, text=True, check=True)
    return int(out.stdout.split()[-1])


def test_kept_memory_is_reused_without_page_faults():
    assert _faults("direct", "-", "release") >= 20
    assert _faults("direct", "-", "keep") < 10


def test_scorer_keeps_memory_unless_told_not_to(tmp_path):
    model = save_tiny_model(tmp_path / "tiny")
    assert _faults("scorer", str(model), "keep") < 10
    assert _faults("scorer", str(model), "release") >= 20
