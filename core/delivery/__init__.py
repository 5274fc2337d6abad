"""Answers in chats, written once for every platform: the mechanism (courier), the sender each platform
supplies, its limits, and the retries with back-off."""

from .courier import STATUS_NOTE, Courier, NotRunning, Place, Previews, Sender, Undeliverable
from .limits import Limits, Throttle
from .retry import DELIVERY_BACKOFF_S, JournalReceipt, deliver_with_retries

__all__ = ["DELIVERY_BACKOFF_S", "STATUS_NOTE", "Courier", "JournalReceipt", "Limits", "NotRunning", "Place",
           "Previews", "Sender", "Throttle", "Undeliverable", "deliver_with_retries"]
