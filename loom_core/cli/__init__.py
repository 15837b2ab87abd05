"""The ``loom`` command line. Sub-commands are imported only when run."""
