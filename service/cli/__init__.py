"""The ``ivr`` command (``service.cli.main``) and ``ivr demo``."""
