"""Evaluators: attribute classifiers (privacy/utility CLS) and, later, FID and attacks."""
