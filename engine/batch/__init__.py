"""Batch pre-annotation: manifests of studies, records for resuming, the per-study worker task, Dask, the run.
"""
