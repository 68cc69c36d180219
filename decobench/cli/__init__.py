"""The ``decobench`` command line."""
