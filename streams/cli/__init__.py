"""The ``volstream`` command line (see :mod:`streams.cli.main`)."""

from streams.cli.main import main

__all__ = ["main"]
