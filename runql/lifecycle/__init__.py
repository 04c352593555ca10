"""The run lifecycle: creating runs, moving them through their states, executing them."""
