"""``decobench suite``: grids of runs (methods x setups x regimes x seeds per track), sharded and resumable."""
