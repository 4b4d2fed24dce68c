"""Command-line entry point (``neurokube``)."""
