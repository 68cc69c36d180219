"""Decoupling methods. Each is a plugin written against ``decobench.methods.base.DecouplingMethod``."""
