"""Exit codes of ``python -m mldeploy`` (documented in docs/cli.md and the parser's epilog)."""

EXIT_OK = 0
EXIT_ERROR = 1
EXIT_USAGE = 2  # argparse's own code for bad arguments; also a bad MLDEPLOY_* setting
EXIT_INVALID_INPUT = 3  # also: `score` finished but some rows failed
EXIT_NOT_READY = 4
EXIT_NOT_FOUND = 5
