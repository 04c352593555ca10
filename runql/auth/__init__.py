"""API keys and the organizations they open."""
