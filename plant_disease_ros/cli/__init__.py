"""The ``plant-disease`` command line: one module per verb (``add_arguments``, ``run``)."""
