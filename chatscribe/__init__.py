"""chatscribe: transcribe voice notes, audio and video sent in chats."""

__version__ = "0.1.0"
