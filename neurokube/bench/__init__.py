"""Benchmarks that need the local control plane (``neurokube bench``)."""
