"""A local web demo of every project's trained models: `python -m demo`, one tab per project, on 127.0.0.1."""
