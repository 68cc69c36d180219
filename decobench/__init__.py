"""decobench: a benchmark harness for privacy-preserving face-data release."""

__version__ = "0.1.0"
