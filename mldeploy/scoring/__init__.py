"""Scoring files: ``python -m mldeploy score``. Formats and chunked I/O in :mod:`.formats`,
progress reporting in :mod:`.progress`, the local run in :mod:`.local`, the Dask run in
:mod:`.cluster`; both score each chunk with :func:`.chunk.score_frame` (the model's answers, plus
each row's model version and out-of-range fields)."""
