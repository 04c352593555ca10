"""The live servers of tests/subscriptions, for the text rule's tests."""

from tests.subscriptions.conftest import live, live_settings, quiet_live

__all__ = ["live", "live_settings", "quiet_live"]
