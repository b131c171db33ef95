"""PACS connectivity: servers (:mod:`.servers`), DIMSE (:mod:`.dimse`) and DICOMweb (:mod:`.web`).

Everything received goes into the local study database (:mod:`lumbarview.services.study_db`).
"""
