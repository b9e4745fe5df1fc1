"""The seven deep-learning projects; each runs as `python -m projects.<name>`."""
