"""The reader's gradings of a lumbar study, per level (and side where the grading has one), each
set or cleared an undoable command in the session's one history. No Qt, no file format.

:data:`GRADINGS` holds every grading with its values, whether it is graded per side, its
definition and its source (the hover text of the grading panel, and README's table). A
:class:`Grade` is one value a reader (``source`` ``reader``) or the dataset (``dataset``: SPIDER
gradings, RSNA 2024 ``train.csv``) gave; the dataset's grades are kept as the dataset wrote them
and marked so. :func:`disagreements` points out a grade that a measured value contradicts by a
published cut-off; it never changes the grade.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass

from lumbarview.core.events import Signal
from lumbarview.model.commands import Command, UndoStack

#: The lumbar disc levels graded, top down.
LEVELS = ("L1-L2", "L2-L3", "L3-L4", "L4-L5", "L5-S1")
#: The sides of a sided grading.
GRADE_SIDES = ("left", "right")
#: Who gave a grade.
GRADE_SOURCES = ("reader", "dataset")
#: Dural sac area (mm²) under which stenosis is absolute (Bolender/Schönström 1985; post-op
#: significance: measurements.md [BOL85], [POSTOP]).
DSCA_ABSOLUTE_MM2 = 75.0
#: Meyerding bands: the upper bound (slip %, inclusive) of grades I-IV; above 100 % is V.
MEYERDING_BANDS = ((25.0, "I"), (50.0, "II"), (75.0, "III"), (100.0, "IV"))
ROMAN = ("0", "I", "II", "III", "IV", "V")


@dataclass(frozen=True)
class Grading:
    """One grading system: its stored ``key``, the name readers use, its values in order (each
    with its meaning), whether it is graded per side, its definition and source."""

    key: str
    name: str
    values: tuple[tuple[str, str], ...]
    sided: bool
    definition: str
    source: str

    @property
    def value_names(self) -> tuple[str, ...]:
        return tuple(v for v, _ in self.values)

    def meaning(self, value: str) -> str:
        return dict(self.values).get(value, "")

    @property
    def code(self) -> str:
        """Its code value in lumbarview's coding scheme (DICOM SR; at most 16 characters)."""
        return SR_CODES[self.key]


_SCHIZAS = "Schizas C et al. Spine 2010;35:1919-1924 (measurements.md [SCH10])"
_LEE_C = "Lee GY et al. Skeletal Radiol 2011;40:1033-1039 (measurements.md [RP-CASE], [SEO23])"
_LEE_F = "Lee S et al. AJR 2010;194:1095-1098 (measurements.md [LEE10])"
_PFIRRMANN = "Pfirrmann CW et al. Spine 2001;26:1873-1878"
_MODIC = "Modic MT et al. Radiology 1988;166:193-199"
_MEYERDING = "Meyerding HW. Surg Gynecol Obstet 1932;54:371-377 (measurements.md [RP-MEY])"
_NOMENCLATURE = "Fardon DF et al. Lumbar disc nomenclature: version 2.0. Spine 2014;39:E1448-E1465"
_RSNA = ("RSNA 2024 Lumbar Spine Degenerative Classification (train.csv): three severities; Normal/Mild joins "
         "Lee 0 and 1")
_SPIDER = "van der Graaf JW et al. SPIDER, Sci Data 2024 (measurements.md [SPIDER]): present (1) or absent (0)"

_RSNA_VALUES = (("Normal/Mild", "none or mild narrowing"), ("Moderate", "moderate narrowing"),
                ("Severe", "severe narrowing"))
GRADINGS: tuple[Grading, ...] = (
    Grading("schizas", "Schizas (central canal)", (
        ("A1", "rootlets dorsal, less than half the sac; CSF clearly visible (no or minor stenosis)"),
        ("A2", "rootlets dorsal in a horseshoe (no or minor stenosis)"),
        ("A3", "rootlets dorsal, more than half the sac (no or minor stenosis)"),
        ("A4", "rootlets central, filling most of the sac (no or minor stenosis)"),
        ("B", "rootlets fill the sac but can still be told apart; some CSF (moderate stenosis)"),
        ("C", "no rootlets or CSF visible; posterior epidural fat present (severe stenosis)"),
        ("D", "as C and no posterior epidural fat (extreme stenosis)")), False,
        "Axial T2 at the disc level: the rootlet to CSF ratio in the dural sac.", _SCHIZAS),
    Grading("lee_central", "Lee (central canal)", (
        ("0", "no stenosis: anterior CSF space not obliterated"),
        ("1", "mild: anterior CSF obliterated, cauda equina roots clearly separable"),
        ("2", "moderate: some roots aggregated, cannot all be told apart"),
        ("3", "severe: no CSF visible, the roots one bundle")), False,
        "Axial T2 at the disc level: obliteration of the anterior CSF space and aggregation of the roots.", _LEE_C),
    Grading("lee_foraminal", "Lee (foramen)", (
        ("0", "no stenosis"),
        ("1", "perineural fat obliterated in two opposing directions (vertical or transverse)"),
        ("2", "perineural fat obliterated in all four directions, no root deformity"),
        ("3", "nerve root collapse or morphologic change")), True,
        "Sagittal T1/T2 through the foramen: perineural fat around the exiting root.", _LEE_F),
    Grading("pfirrmann", "Pfirrmann (disc)", (
        ("1", "homogeneous, bright white, normal height; clear nucleus/annulus distinction"),
        ("2", "inhomogeneous, with or without horizontal bands; normal height; clear distinction"),
        ("3", "inhomogeneous, grey; unclear distinction; normal to slightly decreased height"),
        ("4", "inhomogeneous, grey to black; distinction lost; normal to moderately decreased height"),
        ("5", "inhomogeneous, black; distinction lost; disc space collapsed")), False,
        "Sagittal T2: signal and structure of the disc, nucleus/annulus distinction and height.", _PFIRRMANN),
    Grading("modic", "Modic (endplates)", (
        ("0", "no endplate signal change"),
        ("1", "T1 low, T2 high: oedema, inflammation"),
        ("2", "T1 high, T2 high or iso: fatty replacement"),
        ("3", "T1 low, T2 low: sclerosis")), False,
        "Sagittal T1 and T2: vertebral endplate and subchondral marrow signal next to the disc.", _MODIC),
    Grading("meyerding", "Meyerding (slip)", (
        ("0", "no slip"), ("I", "slip up to 25 % of the lower body's AP length"), ("II", "26-50 %"),
        ("III", "51-75 %"), ("IV", "76-100 %"), ("V", "more than 100 % (spondyloptosis)")), False,
        "Sagittal: offset of the posterior cortices of the upper and lower bodies over the lower body's AP "
        "length.", _MEYERDING),
    Grading("disc_contour", "Disc contour (nomenclature 2.0)", (
        ("normal", "no disc material beyond the ring apophyses"),
        ("bulge", "disc tissue beyond the apophyses over more than 25 % (90°) of the circumference"),
        ("protrusion", "focal displacement, less than 25 % of the circumference; base wider than the "
                       "displaced material"),
        ("extrusion", "displaced material wider than its base in any plane, or extending beyond the endplates "
                      "cranio-caudally"),
        ("sequestration", "extruded material with no continuity to the disc")), False,
        "Axial and sagittal: displacement of disc material beyond the disc space.", _NOMENCLATURE),
    Grading("disc_narrowing", "Disc narrowing", (("0", "absent"), ("1", "present")), False,
            "Sagittal: disc height loss against the neighbouring discs.", _SPIDER),
    Grading("disc_herniation", "Disc herniation", (("0", "absent"), ("1", "present")), False,
            "Sagittal: localised displacement of disc material (protrusion or extrusion).", _SPIDER),
    Grading("disc_bulging", "Disc bulging", (("0", "absent"), ("1", "present")), False,
            "Sagittal: disc tissue beyond the vertebral body margins over a broad base.", _SPIDER),
    Grading("endplate_upper", "Upper endplate defect", (("0", "absent"), ("1", "present")), False,
            "Sagittal: Schmorl node or other defect of the endplate above the disc.", _SPIDER),
    Grading("endplate_lower", "Lower endplate defect", (("0", "absent"), ("1", "present")), False,
            "Sagittal: Schmorl node or other defect of the endplate below the disc.", _SPIDER),
    Grading("spondylolisthesis", "Spondylolisthesis", (("0", "absent"), ("1", "present")), False,
            "Sagittal: slip of the upper vertebra on the lower (graded by Meyerding).", _SPIDER),
    Grading("rsna_canal", "RSNA canal stenosis", _RSNA_VALUES, False,
            "Axial and sagittal T2: central canal narrowing.", _RSNA),
    Grading("rsna_subarticular", "RSNA subarticular stenosis", _RSNA_VALUES, True,
            "Axial T2: narrowing of the lateral recess.", _RSNA),
    Grading("rsna_foraminal", "RSNA foraminal narrowing", _RSNA_VALUES, True,
            "Sagittal T1: narrowing of the neural foramen.", _RSNA),
)
BY_KEY = {g.key: g for g in GRADINGS}
#: Each grading's code value in lumbarview's own coding scheme (no SNOMED or RadLex code for these
#: gradings is used: none was verified).
SR_CODES = {
    "schizas": "SCHIZAS", "lee_central": "LEE-CENTRAL", "lee_foraminal": "LEE-FORAMEN", "pfirrmann": "PFIRRMANN",
    "modic": "MODIC", "meyerding": "MEYERDING", "disc_contour": "DISC-CONTOUR", "disc_narrowing": "DISC-NARROWING",
    "disc_herniation": "DISC-HERNIATION", "disc_bulging": "DISC-BULGING", "endplate_upper": "ENDPLATE-UPPER",
    "endplate_lower": "ENDPLATE-LOWER", "spondylolisthesis": "SPONDYLOLISTH", "rsna_canal": "RSNA-CANAL",
    "rsna_subarticular": "RSNA-SUBARTIC", "rsna_foraminal": "RSNA-FORAMEN"}


def grading(key: str) -> Grading:
    found = BY_KEY.get(key)
    if found is None:
        raise ValueError(f"unknown grading {key!r}; one of {', '.join(BY_KEY)}")
    return found


#: Where a grade sits: (case, level, grading, side).
Slot = tuple[str | None, str, str, str | None]


@dataclass(frozen=True)
class Grade:
    """One grade: of ``grading`` at ``level`` (and ``side`` for a sided grading), its value,
    who gave it (``reader`` or ``dataset``) and a note (a dataset grade says where it is from)."""

    grading: str
    level: str
    value: str
    side: str | None = None
    source: str = "reader"
    note: str = ""
    case: str | None = None

    @property
    def slot(self) -> Slot:
        return (self.case, self.level, self.grading, self.side)

    @classmethod
    def create(cls, grading_key: str, level: str, value: str, side: str | None = None, source: str = "reader",
               note: str = "", case: str | None = None) -> Grade:
        """A checked grade: a known grading, level, side and value (ValueError saying what is wrong)."""
        g = grading(grading_key)
        if level not in LEVELS:
            raise ValueError(f"unknown level {level!r}; one of {', '.join(LEVELS)}")
        if g.sided and side not in GRADE_SIDES:
            raise ValueError(f"{g.name} is graded per side: side must be one of {', '.join(GRADE_SIDES)}, "
                             f"not {side!r}")
        if not g.sided and side is not None:
            raise ValueError(f"{g.name} has no side (got {side!r})")
        if value not in g.value_names:
            raise ValueError(f"{value!r} is not a {g.name} grade; one of {', '.join(g.value_names)}")
        if source not in GRADE_SOURCES:
            raise ValueError(f"unknown grade source {source!r}; one of {', '.join(GRADE_SOURCES)}")
        return cls(grading_key, level, value, side, source, note, case)

    def text(self) -> str:
        g = BY_KEY[self.grading]
        where = f" {self.side}" if self.side else ""
        return f"{g.name}{where}: {self.value} ({g.meaning(self.value)})"


def slots() -> Iterator[tuple[str, str, str | None]]:
    """Every (level, grading, side) a study can be graded at, in the panel's order."""
    for level in LEVELS:
        for g in GRADINGS:
            for side in (GRADE_SIDES if g.sided else (None,)):
                yield (level, g.key, side)


_ORDER = {slot: n for n, slot in enumerate(slots())}


class GradingDocument:
    """The session's grades: at most one per (case, level, grading, side). Every set and clear is an
    undoable command in the given history; ``changed`` says which slots changed."""

    changed = Signal(object)  # tuple of slots, or None for all

    def __init__(self, undo: UndoStack) -> None:
        self.undo = undo
        self._grades: dict[Slot, Grade] = {}

    def __iter__(self) -> Iterator[Grade]:
        return iter(sorted(self._grades.values(),
                           key=lambda g: (g.case or "", _ORDER.get(g.slot[1:], len(_ORDER)))))

    def __len__(self) -> int:
        return len(self._grades)

    def get(self, case: str | None, level: str, grading_key: str, side: str | None = None) -> Grade | None:
        return self._grades.get((case, level, grading_key, side))

    def of_case(self, case: str | None) -> list[Grade]:
        return [g for g in self if g.case == case]

    def set(self, case: str | None, grading_key: str, level: str, value: str | None,
            side: str | None = None) -> None:
        """The reader grades a slot of ``case`` (``value`` None clears it); one undo step. A
        dataset grade the reader sets to the same value becomes the reader's."""
        slot = (case, level, grading_key, side)
        old = self._grades.get(slot)
        new = None if value is None else Grade.create(grading_key, level, value, side, case=case)
        if old == new:
            return
        text = f"{grading(grading_key).name} {level}{' ' + side if side else ''}"
        self.undo.push(SetGrade(self, slot, old, new, ("clear " if new is None else "grade ") + text))

    def reset(self, grades: Iterable[Grade]) -> None:
        """Replace every grade (a case opened, a session restored: not an edit)."""
        self._grades = {g.slot: g for g in grades}
        self.changed.emit(None)

    def _put(self, slot: Slot, grade: Grade | None) -> None:
        if grade is None:
            self._grades.pop(slot, None)
        else:
            self._grades[slot] = grade
        self.changed.emit((slot,))


class SetGrade(Command):
    def __init__(self, doc: GradingDocument, slot: Slot, old: Grade | None, new: Grade | None, text: str) -> None:
        self.doc, self.slot, self.old, self.new, self.text = doc, slot, old, new, text

    def do(self) -> None:
        self.doc._put(self.slot, self.new)

    def undo(self) -> None:
        self.doc._put(self.slot, self.old)


# -- grades and measured values ---------------------------------------------------------------
def meyerding_of(slip_percent: float) -> str:
    """The Meyerding grade of a slip (percent of the lower body's AP length; its size counts,
    not its direction): I up to 25 %, II to 50 %, III to 75 %, IV to 100 %, V beyond."""
    slip = abs(slip_percent)
    for bound, name in MEYERDING_BANDS:
        if slip <= bound:
            return name
    return "V"


@dataclass(frozen=True)
class Measured:
    """A measured value of a level the grades are checked against (a row of the engine or of the
    reader's measurements): ``quantity`` as the engine names it (``canal_area``, ``slip``...)."""

    level: str
    quantity: str
    value: float
    unit: str
    source: str = "engine"


def reader_quantity(kind_name: str, unit: str, note: str) -> str:
    """What a reader's measurement measures, for the cut-offs: an area whose note or label names
    the dural sac or canal is a dural sac area (``canal_area``); anything else is its kind."""
    words = note.lower()
    if unit in ("mm2", "mm²") and any(w in words for w in ("sac", "canal", "dural")):
        return "canal_area"
    return kind_name


@dataclass(frozen=True)
class Disagreement:
    """A grade a measured value contradicts by a published cut-off; ``why`` says which."""

    grade: Grade
    measured: Measured
    why: str


def disagreements(grades: Iterable[Grade], measured: Sequence[Measured]) -> list[Disagreement]:
    """Grades contradicted by a measured value of their level: Schizas A1-A4 or Lee central 0 (no
    or minor stenosis) with a dural sac area under 75 mm² (absolute stenosis); a Meyerding grade
    other than the band of the measured slip %, or 0 with a slip of grade II or more. Pointed
    out, never changed."""
    out: list[Disagreement] = []
    for grade in grades:
        for m in measured:
            if m.level != grade.level or m.value != m.value:  # NaN: not measured
                continue
            if (m.quantity in ("canal_area", "canal_area_min") and m.unit in ("mm2", "mm²")
                    and m.value < DSCA_ABSOLUTE_MM2
                    and ((grade.grading == "schizas" and grade.value.startswith("A"))
                         or (grade.grading == "lee_central" and grade.value == "0"))):
                out.append(Disagreement(grade, m, f"{grading(grade.grading).name} {grade.value} means no or minor "
                                        f"stenosis, but the dural sac area is {m.value:.0f} mm² ({m.source}), under "
                                        f"the absolute stenosis cut-off of {DSCA_ABSOLUTE_MM2:.0f} mm² "
                                        "(Bolender/Schönström 1985)"))
            if grade.grading == "meyerding" and m.quantity == "slip" and m.unit == "%":
                band = meyerding_of(m.value)
                contradicted = (ROMAN.index(band) >= 2) if grade.value == "0" else band != grade.value
                if contradicted:
                    out.append(Disagreement(grade, m, f"Meyerding {grade.value}, but the measured slip of "
                                            f"{abs(m.value):.0f} % ({m.source}) is Meyerding {band}"))
    return out

