"""The Open Inference Protocol (KServe V2) REST routes."""
