"""Fixed, stratified, identity-disjoint splits written as plain files with a hashed manifest."""

from decobench.splits.store import (SplitError, build_splits, load_split, read_manifest, split_hashes,
                                    splits_dir, verify_splits)
from decobench.splits.stratify import FRACTIONS, PAPER_NAMES, SPLITS, assign_splits, split_quality

__all__ = ["FRACTIONS", "PAPER_NAMES", "SPLITS", "SplitError", "assign_splits", "build_splits", "load_split",
           "read_manifest", "split_hashes", "split_quality", "splits_dir", "verify_splits"]
