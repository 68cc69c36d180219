"""The main job: train a decoupling method, release a synthetic split, evaluate it, write a result."""
