"""IVR orchestration for the Bird Voice API."""

__version__ = "0.1.0"
