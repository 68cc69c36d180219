"""Attacks and evaluators: plugins that take a typed release and return metrics (see base.py)."""
