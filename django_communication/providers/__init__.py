"""Providers hand a rendered Message to a delivery service. See base.py for the contract."""

from .base import BaseProvider, EmailProvider, SmsProvider, VoiceProvider

__all__ = ["BaseProvider", "EmailProvider", "SmsProvider", "VoiceProvider"]
