"""Datasets: the embedded SynthFaces testbed and loaders for real datasets in native formats."""
