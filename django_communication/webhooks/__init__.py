"""Incoming provider notifications: SNS signature verification (sns.py) and routing of the
verified payloads to tracking, inbound and suppression (notifications.py)."""
