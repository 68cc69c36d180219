"""Stages cached by content hash: a finished stage is a folder with a DONE marker, written last.

A killed run leaves at most a ``*.partial`` folder, which the next run discards and redoes, so a
half-written stage never looks whole. Two runs sharing one cache (one ``--out``) take an exclusive
file lock per stage: the second waits while the first computes, then reads the finished stage.
"""

from __future__ import annotations

import fcntl
import json
import shutil
from contextlib import contextmanager
from pathlib import Path

from decobench.io import atomic_write_json
from decobench.run.config import config_hash


@contextmanager
def file_lock(path: Path):
    """Exclusive advisory lock held for the block (released by the OS if the process dies)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a+") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


class StageCache:
    def __init__(self, root: str | Path):
        self.root = Path(root)

    def key(self, stage: str, inputs: dict) -> Path:
        return self.root / f"{stage}-{config_hash(inputs)}"

    def done(self, folder: Path) -> bool:
        return (folder / "DONE").is_file()

    @contextmanager
    def stage(self, stage: str, inputs: dict):
        """``with cache.stage(name, inputs) as (folder, cached):`` write into folder unless cached."""
        final = self.key(stage, inputs)
        if self.done(final):
            yield final, True
            return
        with file_lock(self.root / ".locks" / f"{final.name}.lock"):
            if self.done(final):  # another run finished it while this one waited
                yield final, True
                return
            partial = final.with_name(final.name + ".partial")
            shutil.rmtree(partial, ignore_errors=True)
            partial.mkdir(parents=True)
            atomic_write_json(partial / "inputs.json", json.loads(json.dumps(inputs, default=str)))
            yield partial, False
            atomic_write_json(partial / "DONE", {"stage": stage})
            shutil.rmtree(final, ignore_errors=True)
            partial.rename(final)
