"""Several models in one server, pinned versions, canary and shadow rollouts.

- ``registry``: model names and their folders under the model directory, a Modeler per name, a
  bounded cache of pinned (non-current) versions;
- ``state``: the rollout state file of a model, written atomically, followed by every worker;
- ``control``: start, status, promote, abort (the command line and the admin routes share it);
- ``routing``: which version answers a request, and what each answer counts;
- ``counters``: the counts every worker shares (a SQLite file beside the state);
- ``shadow``: copies of requests answered by the candidate after the answer went out.
"""
