"""Agents: the protocol a run's executor calls, and the kinds that implement it."""
