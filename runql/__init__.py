"""runql: a GraphQL gateway over the agent run model."""

__version__ = "0.1.0"
