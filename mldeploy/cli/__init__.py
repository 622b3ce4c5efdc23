"""The command line, ``python -m mldeploy`` (or ``mldeploy``): one module per command."""
