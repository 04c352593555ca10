"""The live server of tests/subscriptions, for the text rule's tests."""

from tests.subscriptions.conftest import live, live_settings

__all__ = ["live", "live_settings"]
