"""Batch measurement: runners (local processes, a Dask cluster), the plan of a run (failure
budget, input fingerprint, provenance), a progress bar and a summary for people."""
