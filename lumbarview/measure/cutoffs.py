"""The literature cut-offs the engine flags values with, as data (``docs/measurements.md``).

A flag is a literature cut-off with its source, never a diagnosis. :func:`flag` gives the text
of the first (most severe) cut-off of a quantity that a value crosses; slip and the foramen's
combined Hasegawa criteria have their own small functions below, from the same table style.
"""

from __future__ import annotations

import math
import operator
from collections.abc import Callable
from dataclasses import dataclass

_OPS: dict[str, Callable[[float, float], bool]] = {"<": operator.lt, "<=": operator.le}


@dataclass(frozen=True)
class Cutoff:
    """``value op threshold`` flags ``quantities`` with ``text (source)note``."""

    quantities: tuple[str, ...]
    op: str  # "<" | "<="
    threshold: float
    text: str
    source: str
    note: str = ""

    def crossed(self, value: float) -> bool:
        return math.isfinite(value) and _OPS[self.op](value, self.threshold)

    def describe(self) -> str:
        return f"{self.text} ({self.source}){self.note}"


_CANAL_AREA = ("canal_area", "canal_area_min")
_OSSEOUS = ", defined for the osseous canal; this is the thecal sac"
_COMPENDIUM = "compendium grading, secondary source"

#: Most severe first within each quantity.
CUTOFFS: tuple[Cutoff, ...] = (
    Cutoff(_CANAL_AREA, "<", 75.0, "dural sac area < 75 mm²: absolute stenosis cut-off", "Bolender/Schönström 1985"),
    Cutoff(_CANAL_AREA, "<", 100.0, "dural sac area < 100 mm²: relative stenosis cut-off",
           "Bolender/Schönström 1985; Hamanishi 1994"),
    Cutoff(("canal_ap",), "<", 10.0, "AP < 10 mm: absolute cut-off", "Verbiest; Framingham CT", _OSSEOUS),
    Cutoff(("canal_ap",), "<", 12.0, "AP < 12 mm: relative cut-off", "Verbiest; Framingham CT", _OSSEOUS),
    Cutoff(("foramen_height",), "<=", 15.0, "foraminal height ≤ 15 mm", "Hasegawa 1995"),
    Cutoff(("posterior_disc_height",), "<=", 4.0, "posterior disc height ≤ 4 mm", "Hasegawa 1995"),
    Cutoff(("foramen_width",), "<", 2.0, "foraminal width < 2 mm: severe", _COMPENDIUM),
    Cutoff(("foramen_width",), "<", 3.0, "foraminal width 2-3 mm: moderate", _COMPENDIUM),
    Cutoff(("foramen_width",), "<", 4.0, "foraminal width 3-4 mm: mild", _COMPENDIUM),
    # DHI = mean(anterior, middle, posterior disc height) / mean adjacent body height (Chen
    # 2022's method M6). The compendium (spinebase.org, "Disc-Height Index") grades >= 0.40
    # normal, 0.30-0.39 mild, 0.20-0.29 moderate, < 0.20 severe; the primary paper it cites
    # (Chen X et al., J Clin Neurosci 2022;103:153) compares the reliability of seven DHI
    # methods and publishes no cut-off, and no primary source for the tiers was found. Its
    # "mild" tier is left out: it holds normal discs. Normal lumbar discs on MRI are 9.1 ±
    # 1.3 mm high at the centre line (Spahn et al., Z Orthop Unfall 2024, 130 patients without
    # disc damage), with reference ranges of 6.3-11.0 mm at L1/2 up to 7.8-14.6 mm at L4/5 in
    # 169 asymptomatic adults (J Orthop Surg Res 2018;13:34); over lumbar bodies about 26 mm
    # high (the phantom's) that is DHI 0.35 ± 0.05, inside "mild". The two lower tiers stay,
    # marked secondary: 0.30 is below about mean - 1 SD of those normal proportions.
    Cutoff(("dhi",), "<", 0.20, "DHI < 0.20: severe height loss", _COMPENDIUM),
    Cutoff(("dhi",), "<", 0.30, "DHI 0.20-0.29: moderate height loss", _COMPENDIUM,
           "; normal discs are 0.30-0.40 and more (see lumbarview.measure.cutoffs)"),
)

#: Both Hasegawa criteria together (foraminal height ≤ 15 mm and posterior disc height ≤ 4 mm).
HASEGAWA_BOTH = "; both Hasegawa criteria met (root compression in 80 % of such foramina)"

#: Meyerding's grades: (upper bound of the slip in % of the lower body's depth, grade).
MEYERDING = ((25.0, "I"), (50.0, "II"), (75.0, "III"), (100.0, "IV"), (math.inf, "V"))
SLIP_POSITIVE_MM = 3.0  # one open pipeline's threshold (secondary source)


def flag(quantity: str, value: float) -> str | None:
    """The first cut-off of ``quantity`` that ``value`` crosses, as text; None for none."""
    found = next((c for c in CUTOFFS if quantity in c.quantities and c.crossed(value)), None)
    return None if found is None else found.describe()


def hasegawa_flags(height: float, posterior_disc_height: float) -> tuple[str | None, str | None]:
    """The flags of a foramen's height and posterior disc height, with the note that both
    Hasegawa criteria are met when they are."""
    h, p = flag("foramen_height", height), flag("posterior_disc_height", posterior_disc_height)
    if h is not None and p is not None:
        return h + HASEGAWA_BOTH, p + HASEGAWA_BOTH
    return h, p


def slip_flag(slip_mm: float, percent: float) -> str | None:
    """Meyerding's grade of a slip of at least 3 mm (the open pipeline's threshold), or None."""
    if abs(slip_mm) < SLIP_POSITIVE_MM or not math.isfinite(percent):
        return None
    grade = next(g for bound, g in MEYERDING if abs(percent) <= bound)
    return (f"slip {slip_mm:.1f} mm ({percent:.0f} % of the lower body's depth): Meyerding grade {grade}; "
            "≥ 3 mm is called positive by one open pipeline (secondary source)")


def dhi_flag(dhi: float) -> str | None:
    """The disc height index's literature grading, or None."""
    return flag("dhi", dhi)
