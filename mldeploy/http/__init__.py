"""What every request passes through: the app factory, errors, keys, limits, request ids, logs, metrics, JSON."""
