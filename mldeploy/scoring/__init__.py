"""Scoring files: ``python -m mldeploy score``. Formats and chunked I/O in :mod:`.formats`,
progress reporting in :mod:`.progress`, the local run in :mod:`.local`, the Dask run in
:mod:`.cluster`; the per-chunk work itself is :func:`modeler.batch.score_frame`."""
