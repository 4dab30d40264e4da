"""A fake Cohere API for tests and benchmarks: the real ``cohere`` SDK talks to it over HTTP."""

from .app import create_app
from .knobs import Knobs

__all__ = ["Knobs", "create_app"]
