"""The fuzz harness on every CI run: the seed corpus and the regression inputs are replayed through
their loaders, then a short random run with a fixed seed, bounded by a count of inputs per target
(deterministic: an input is a pure function of seed, target and index).

Everything runs in worker subprocesses (tests/fuzz/harness.py), so a native crash fails the test
instead of killing pytest. Failures listed in tests/fuzz/findings/findings.md are open findings
waiting for their fix: the random run tolerates those (and prints them), nothing else; once a
fix lands, its input moves to tests/fuzz/regressions/ and its row leaves findings.md.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from tests.fuzz.harness import FINDINGS_MD, known_signatures
from tests.fuzz.targets import CORPUS, TARGETS, seeds

REPO = Path(__file__).resolve().parents[1]
REGRESSIONS = REPO / "tests" / "fuzz" / "regressions"
SEED = 20261202
PER_TARGET = 40
LAYOUT_INPUTS = 12
SESSION_INPUTS = 6  # each restores into the real viewer (offscreen): the slowest target


def _harness(args: list[str], out: Path, timeout: float) -> tuple[subprocess.CompletedProcess[str], dict]:
    env = dict(os.environ, PYTHONPATH=str(REPO))
    proc = subprocess.run([sys.executable, "-m", "tests.fuzz.harness", "--out", str(out), "--progress", "0",
                           *args], cwd=REPO, env=env, capture_output=True, text=True, timeout=timeout)
    summary_file = out / "summary.json"
    assert summary_file.is_file(), f"the harness wrote no summary:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    return proc, json.loads(summary_file.read_text())


def test_every_target_has_seeds() -> None:
    missing = [name for name in TARGETS if not seeds(name)]
    assert not missing, f"no seed corpus for {missing}; run python -m tests.fuzz.make_corpus"
    total = sum(p.stat().st_size for p in CORPUS.rglob("*") if p.is_file())
    assert total < 2_000_000, f"the corpus is {total:,} bytes; keep it well under 2 MB"


def test_findings_table_names_files_that_exist() -> None:
    """Every open finding points at its (small) input, so that the fix can be checked."""
    rows = [[c.strip().strip("`") for c in line.strip().strip("|").split("|")]
            for line in FINDINGS_MD.read_text(encoding="utf-8").splitlines() if line.startswith("|")]
    rows = [r for r in rows if r[0] in TARGETS]
    assert len(known_signatures()) == len({(r[0], r[1]) for r in rows})
    for row in rows:
        path = FINDINGS_MD.parent / row[2]
        assert path.is_file(), f"findings.md names {row[2]}, which is not there"
        assert path.parent.name == row[0], f"{row[2]} is not in the folder of its target {row[0]}"
        assert path.stat().st_size <= 64_000, f"{row[2]} is large for a regression input"


def test_replay_then_short_random_run(tmp_path: Path) -> None:
    """Replay: every corpus and regression file gives success or a LoadError (strict). Then
    PER_TARGET mutated inputs per target (LAYOUT_INPUTS for whole layouts): no new failure."""
    args = ["--replay", str(CORPUS), "--count", str(PER_TARGET), "--count-for", f"layout={LAYOUT_INPUTS}",
            "--count-for", f"session={SESSION_INPUTS}", "--seed", str(SEED), "--workers", "2", "--timeout", "20"]
    if REGRESSIONS.is_dir() and any(p.is_file() and p.suffix != ".md" for p in REGRESSIONS.rglob("*")):
        args += ["--replay", str(REGRESSIONS)]
    proc, summary = _harness(args, tmp_path / "out", timeout=230)
    report = proc.stdout[-6000:]
    replayed = [f for f in summary["failures"] if "path" in f["source"]]
    assert not replayed, f"a corpus or regression file fails:\n{report}"
    new = [f for f in summary["failures"] if not f["known"]]
    assert not new, f"the fuzz run found new failures (add them to findings.md or fix them):\n{report}"
    n_seed_files = sum(len(seeds(t)) for t in TARGETS)
    n_regressions = sum(1 for p in REGRESSIONS.rglob("*") if p.is_file() and p.suffix != ".md") \
        if REGRESSIONS.is_dir() else 0
    expected = n_seed_files + n_regressions + PER_TARGET * (len(TARGETS) - 2) + LAYOUT_INPUTS + SESSION_INPUTS
    assert summary["total_inputs"] == expected, report
    assert proc.returncode == 0, report
    known = [f for f in summary["failures"] if f["known"]]
    if known:
        print(f"{len(known)} open finding(s) met again (see tests/fuzz/findings/findings.md):")
        for f in known:
            print(f"  {f['target']}: {f['sig']}")
