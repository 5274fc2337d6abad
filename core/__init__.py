"""The platform-free transcription core (see core/service.py for its entry point)."""

from .retention import Forgotten

__all__ = ["Forgotten"]
