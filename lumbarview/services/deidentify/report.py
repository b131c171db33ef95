"""The export report for people: what was exported, what was held back and why, by which rules."""

from __future__ import annotations

from collections import Counter
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from lumbarview.services.deidentify.export import ExportReport


def summary_text(report: ExportReport, with_sources: bool = True) -> str:
    doc = report.to_json(with_sources)
    profile = doc["profile"]
    lines = ["lumbarview export report", ""]
    if report.deidentified:
        options = ", ".join(profile["options"]) or "none"
        lines += [f"De-identified by the Basic Application Level Confidentiality Profile ({profile['standard']}, "
                  f"table version {profile['table_version']}).",
                  f"Options: {options}.",
                  "Codes (DCM, CID 7050): " + ", ".join(f"{c['value']} {c['meaning']}" for c in profile["codes"]) + ".",
                  "Identities: " + ("from the project key (a later export with the same key gives the same "
                                    "UIDs, pseudonyms and date shifts)." if profile["project_key"] else
                                    "from a key drawn for this export alone (not kept)."),
                  f"Private attributes kept: {', '.join(profile['private_allow_list']) or 'none'}."]
    else:
        lines += ["NOT de-identified: the files carry their original identities."]
    lines += [f"Layout: {doc['layout']}.", ""]
    kinds = Counter(item["kind"] for item in doc["exported"])
    lines.append(f"Exported {len(doc['exported'])} file(s): "
                 + (", ".join(f"{n} {kind}" for kind, n in sorted(kinds.items())) or "none") + ".")
    for case, n in sorted(report.cases.items()):
        lines.append(f"  {case}: {n} file(s)")
    lines += ["", f"Held back: {len(doc['held_back'])}."]
    for item in doc["held_back"]:
        lines.append(f"  {item['what']}: {item['why']}" + (f" [{item['source']}]" if with_sources else ""))
    if doc["notes"]:
        lines += ["", "Notes:", *(f"  {note}" for note in doc["notes"])]
    return "\n".join(lines) + "\n"
