"""The event bus: wakes subscribers when runs change. The run_events log stays the truth."""
