"""``lumbarview compare`` on a phantom pair whose changes and motion are known by construction:
the prior is the same analytic spine placed elsewhere (another pose: pitched and shifted) with a
wider canal at L4-L5; the current has the canal narrowed by a known area."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from lumbarview.cli import main
from lumbarview.phantom.spine import LumbarPhantom
from lumbarview.services.compare import change_rows, level_centres, load_study
from tests.compare_helpers import LEVEL, phantom_pair


@pytest.fixture(scope="module")
def pair(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, LumbarPhantom, LumbarPhantom]:
    return phantom_pair(tmp_path_factory.mktemp("compare"))


def test_change_table_finds_the_known_narrowing_and_no_change_elsewhere(
        pair: tuple[Path, Path, LumbarPhantom, LumbarPhantom]) -> None:
    cur_dir, pri_dir, current, prior = pair
    rows = change_rows(load_study(cur_dir).rows, load_study(pri_dir).rows)
    by = {(r["level"], r["quantity"], r["side"]): r for r in rows}
    t_cur = current.ground_truth()["levels"][LEVEL]
    t_pri = prior.ground_truth()["levels"][LEVEL]
    area = by[(LEVEL, "canal_area", None)]
    true_change = t_cur["canal_area_mm2"] - t_pri["canal_area_mm2"]  # pi/4 * 18 * (7.5 - 10.5) = -42.4
    assert true_change < -40
    assert area["difference"] == pytest.approx(true_change, abs=4.0)
    assert area["percent"] == pytest.approx(100 * true_change / t_pri["canal_area_mm2"], abs=4.0)
    assert area["flagged"] is True and area["variability"] == 15.0
    ap = by[(LEVEL, "canal_ap", None)]
    assert ap["difference"] == pytest.approx(-3.0, abs=0.5) and ap["flagged"] is True
    # The disc did not change between the two: measured on both, not flagged.
    disc = by[(LEVEL, "disc_height_middle", None)]
    assert abs(disc["difference"]) < 0.5 and disc["flagged"] is False
    dhi = by[(LEVEL, "dhi", None)]
    assert dhi["flagged"] is None and "not flagged" in dhi["variability_source"]


def test_cli_json_per_level_registers_and_carries_the_disc_into_the_prior(
        pair: tuple[Path, Path, LumbarPhantom, LumbarPhantom], capsys: pytest.CaptureFixture[str],
        tmp_path: Path) -> None:
    cur_dir, pri_dir, current, prior = pair
    out_csv = tmp_path / "change.csv"
    assert main(["compare", str(cur_dir), str(pri_dir), "--level", LEVEL, "--json", "--csv", str(out_csv)]) == 0
    lines = [ln for ln in capsys.readouterr().out.splitlines() if ln.strip()]
    assert len(lines) == 1
    obj = json.loads(lines[0])
    assert obj["level"] == LEVEL and obj["converged"] is True
    assert np.asarray(obj["matrix_lps"]).shape == (4, 4)
    centre = np.asarray(obj["centre_lps"])
    truth = prior.to_lps(current.to_spine(centre))
    assert np.linalg.norm(np.asarray(obj["at_prior_lps"]) - truth) <= 1.0
    # The pose differs by a 4 degree pitch about L (the prior's tilt is -4).
    assert abs(abs(obj["rotation_deg"][0]) - 4.0) < 1.0
    m = np.asarray(obj["matrix_lps"])
    np.testing.assert_allclose(m[:3, 3], obj["translation_mm"], atol=1e-3)
    q = {(r["quantity"], r["side"]): r for r in obj["quantities"]}
    assert q[("canal_area", None)]["flagged"] is True
    text = out_csv.read_text()
    assert text.splitlines()[0].startswith("level,quantity,side,unit,prior,current,difference,percent")
    assert f"{LEVEL},canal_area," in text


def test_cli_at_point_and_bad_input(pair: tuple[Path, Path, LumbarPhantom, LumbarPhantom],
                                    capsys: pytest.CaptureFixture[str]) -> None:
    cur_dir, pri_dir, current, prior = pair
    centre = level_centres(load_study(cur_dir, measure=False).label_map)[LEVEL]
    at = ",".join(f"{v:.2f}" for v in centre)
    assert main(["compare", str(cur_dir), str(pri_dir), "--at", at, "--json"]) == 0
    obj = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert "level" not in obj and obj["level_nearest"] == LEVEL
    truth = prior.to_lps(current.to_spine(np.asarray(obj["at_lps"])))
    assert np.linalg.norm(np.asarray(obj["at_prior_lps"]) - truth) <= 1.0
    assert main(["compare", str(cur_dir), str(pri_dir), "--at", "1,2"]) == 2
    assert "three LPS numbers" in capsys.readouterr().err
    assert main(["compare", str(cur_dir), str(pri_dir), "--level", "L9-L10"]) == 2
    assert "not in the current study's labels" in capsys.readouterr().err
    assert main(["compare", str(cur_dir), str(pri_dir), "--at", "900,900,900"]) == 2
    assert "outside the current volume" in capsys.readouterr().err
    assert main(["compare", str(cur_dir), str(pri_dir), "--level", LEVEL, "--csv", str(pri_dir / "x.csv")]) == 2
    assert "never writes into a dataset" in capsys.readouterr().err and not (pri_dir / "x.csv").exists()
    assert main(["compare", str(cur_dir), str(pri_dir / "nothing")]) == 2
    assert "no such file or folder" in capsys.readouterr().err
