"""How much a measured quantity varies between readers: a change between two studies smaller than
this is not evidence of a real change (data with sources; compare mode flags what exceeds it).

Each entry is the half width of the published inter-observer 95 % limits of agreement (or the
published figure named in ``basis``) in the quantity's unit. Where no agreement figure could be
found the quantity has no entry, and a change of it is shown but never flagged (its row says so).
Sources (also in README, "Compare a prior and a current study"):

- [CMT13] Chiropr Man Therap 2013;21:26 (https://chiromt.biomedcentral.com/articles/10.1186/2045-709X-21-26):
  linear MRI measurements of disc and dural sac, inter-observer LOA [-1.1; 1.4] to [-2.6; 2.0] mm;
  cross-sectional areas, inter-rater LOA [-10.8; 16.4] to [-64.6; 27.1] mm2.
- Issue 28 / anchors-wave3 §E "about 15 mm2 for the dural sac area" (the narrowest CMT13 area LOA).
- [MOR90] Morrissy et al., J Bone Joint Surg Am 1990;72:320: Cobb angle inter-observer 95 % limits
  6.3-7.2 degrees.

The narrowest published limits are used (a change beyond the best readers' agreement is flagged);
a wider limit would hide changes that careful readers can see.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Variability:
    quantity: str
    threshold: float
    unit: str
    basis: str
    source: str


_CMT13 = "CMT13: Chiropr Man Therap 2013;21:26"
_LINEAR = ("inter-observer 95% limits of agreement of linear MRI measurements of disc and dural sac, "
           "narrowest [-1.1; 1.4] mm")
_AREA = ("inter-rater 95% limits of agreement of cross-sectional areas, narrowest [-10.8; 16.4] mm2 "
         "(issue 28: about 15 mm2)")
_COBB = "inter-observer 95% limits of the Cobb angle 6.3-7.2 degrees (narrowest)"
_MOR90 = "MOR90: Morrissy et al., J Bone Joint Surg Am 1990;72:320"

#: quantity -> variability. Engine quantities (lumbarview.measure.results.QUANTITIES) and the
#: kinds of manual measurements (distance, area, angle) that share their meaning.
TABLE: dict[str, Variability] = {
    v.quantity: v for v in (
        *(Variability(q, 1.4, "mm", _LINEAR, _CMT13) for q in (
            "canal_ap", "canal_transverse", "foramen_height", "foramen_width", "posterior_disc_height",
            "disc_height_anterior", "disc_height_middle", "disc_height_posterior", "slip", "distance")),
        *(Variability(q, 15.0, "mm2", _AREA, _CMT13) for q in (
            "canal_area", "canal_area_min", "foramen_area", "polygon", "freehand", "ellipse", "rectangle")),
        Variability("angle", 6.3, "deg", _COBB, _MOR90),
        Variability("cobb", 6.3, "deg", _COBB, _MOR90),
    )
}


def variability(quantity: str, unit: str | None) -> Variability | None:
    """The known variability of ``quantity`` in ``unit`` (None when none is documented, or the
    unit differs: slip in % has no published agreement)."""
    v = TABLE.get(quantity)
    return v if v is not None and (unit is None or unit == v.unit) else None
