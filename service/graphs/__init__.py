"""Graph files: loading and checking them (JSON Schema, then the format's rules),
drawing them (``ivr render``) and walking them offline (``ivr simulate``).

The model these produce is ``service.core.graph``; the format is docs/graphs.md.
"""
