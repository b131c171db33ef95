"""The Basic Application Level Confidentiality Profile, driven by DICOM PS3.15 Table E.1-1 kept as data.

The table (``table_e1_1_2024b.json`` beside this module: tag, name and the action code of the
Basic Profile and of every option column, with its version and source) is the one place the
actions come from. :class:`Profile` resolves one action per attribute for the options chosen:

* an option column overrides the Basic Profile column where it has a code (the options chosen
  here never disagree on an attribute: dates, patient characteristics and descriptors are
  disjoint rows of the table);
* the compound codes that depend on the attribute's type in its IOD resolve to the action that
  keeps every IOD conformant without keeping the value: ``X/Z`` -> ``Z``, ``X/D``, ``Z/D`` and
  ``X/Z/D`` -> ``D``, ``X/Z/U*`` -> ``U`` (the sequence is kept, its UIDs replaced and its items
  cleaned like the data set);
* repeating groups (``50xx``, ``60xx``) match on their pattern; private attributes (odd groups)
  are removed unless allow-listed.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

TABLE_FILE = Path(__file__).with_name("table_e1_1_2024b.json")
PROFILE_NAME = "basic"

# CID 7050 De-identification Methods (DCM coding scheme), the codes the options chosen add.
BASIC_PROFILE_CODE = ("113100", "Basic Application Confidentiality Profile")
OPTION_CODES: dict[str, tuple[str, str]] = {
    "retain_longitudinal_modified_dates": ("113107", "Retain Longitudinal Temporal Information Modified Dates Option"),
    "retain_patient_characteristics": ("113108", "Retain Patient Characteristics Option"),
    "clean_descriptors": ("113105", "Clean Descriptors Option"),
}
OPTION_NAMES = tuple(OPTION_CODES)

_COMPOUND = {"X/Z": "Z", "X/D": "D", "Z/D": "D", "X/Z/D": "D", "X/Z/U*": "U"}
_SIMPLE = frozenset("DZXKCU")


@dataclass(frozen=True)
class ProfileOptions:
    """The options chosen for one export (each False by default: the Basic Profile alone)."""

    retain_longitudinal_modified_dates: bool = False
    retain_patient_characteristics: bool = False
    clean_descriptors: bool = False
    #: Private attributes kept, as ``(private creator, element byte)`` pairs, e.g. ``("SIEMENS CSA HEADER", 0x10)``.
    private_allow_list: frozenset[tuple[str, int]] = field(default_factory=frozenset)

    @property
    def chosen(self) -> tuple[str, ...]:
        return tuple(name for name in OPTION_NAMES if getattr(self, name))


@dataclass(frozen=True, eq=False)
class TableRow:
    tag: str  # eight hex digits, "x" for a repeating group's digits
    name: str
    actions: dict[str, str]  # column -> code ("" where the column has none)


@dataclass(frozen=True, eq=False)
class ConfidentialityTable:
    version: str
    source: str
    rows: tuple[TableRow, ...]

    def row(self, tag: int) -> TableRow | None:
        return _index(self)[0].get(tag) or _repeating(self, tag)


@cache
def load_table(path: Path = TABLE_FILE) -> ConfidentialityTable:
    """The table as shipped (its version and source with it)."""
    doc: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    columns: list[str] = doc["columns"]
    rows = []
    for values in doc["rows"]:
        cells = dict(zip(columns, values, strict=True))
        actions = {c: str(cells[c]) for c in columns[3:]}
        rows.append(TableRow(str(cells["tag"]).lower(), str(cells["name"]), actions))
    return ConfidentialityTable(str(doc["version"]), str(doc["source"]), tuple(rows))


@cache
def _index(table: ConfidentialityTable) -> tuple[dict[int, TableRow], list[TableRow]]:
    exact: dict[int, TableRow] = {}
    patterns: list[TableRow] = []
    for row in table.rows:
        if row.tag == "ggggeeee":
            continue  # private attributes: handled by group parity
        if "x" in row.tag:
            patterns.append(row)
        else:
            exact[int(row.tag, 16)] = row
    return exact, patterns


def _repeating(table: ConfidentialityTable, tag: int) -> TableRow | None:
    text = f"{tag:08x}"
    for row in _index(table)[1]:
        if all(p == "x" or p == c for p, c in zip(row.tag, text, strict=True)):
            return row
    return None


def resolve(code: str) -> str:
    """One simple action for a table code (see the module's notes for the compound codes)."""
    code = code.strip()
    if code in _SIMPLE:
        return code
    if code in _COMPOUND:
        return _COMPOUND[code]
    raise ValueError(f"unknown action code {code!r} in the confidentiality table")


@dataclass(frozen=True)
class Profile:
    """Actions by tag for one set of options."""

    options: ProfileOptions = field(default_factory=ProfileOptions)
    table: ConfidentialityTable = field(default_factory=load_table)

    def action(self, tag: int) -> str | None:
        """The action for a public attribute (None: not in the table, kept)."""
        row = self.table.row(tag)
        if row is None:
            return None
        for option in self.options.chosen:
            code = row.actions.get(option, "")
            if code:
                return resolve(code)
        return resolve(row.actions["basic"])

    def method_text(self) -> str:
        """``DeidentificationMethod``: the profile, the table's version and the options (at most 64 chars per value)."""
        return f"lumbarview PS3.15 E.1-1 {self.table.version} basic"

    def method_codes(self) -> list[tuple[str, str]]:
        return [BASIC_PROFILE_CODE, *(OPTION_CODES[o] for o in self.options.chosen)]
