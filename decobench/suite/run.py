"""Run a grid's cells: resumable, shardable, safe to run beside other workers on one shared ``--out``.

* A cell whose ``result.json`` exists is done and skipped; a cell's stages (latents, the real-data
  classifiers, a method's training, its release) sit in ``<out>/.cache`` and are reused by every cell
  and every shard that needs them; the stage cache's file locks make a shared stage be computed once
  while the others wait for it (:mod:`decobench.run.cache`).
* Each cell is claimed with a non-blocking file lock (``<out>/.suite/locks``): a second worker on the
  same grid moves on to the next free cell and comes back to the busy ones at the end (waiting for them, so a
  cell whose worker dies is redone; ``--no-wait`` leaves them to their workers), so N plain
  ``decobench suite run`` processes, or N shards, never compute one cell twice.
* A failing cell does not stop the suite: its error lands in ``<out>/.suite/failed/<cell>.json``
  (what the board reports as "failed") and its full log in ``<out>/.suite/logs/<cell>.log``.
"""

from __future__ import annotations

import fcntl
import functools
import json
import time
import traceback
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path

from decobench.io import atomic_write_json
from decobench.suite.grid import Cell


def cell_dir(cell: Cell, out: str | Path, run_kwargs: dict | None = None) -> Path:
    """The folder ``decobench run`` writes this cell's result.json into (resolving its config, running nothing);
    ``run_kwargs``: the suite's base model, data root and device, which name the folder where not the default."""
    from decobench.registry import methods
    from decobench.run.config import resolve
    from decobench.run.identity import run_folder, with_attacks

    where = cell_where(cell, run_kwargs)
    if cell.track == "cloak":
        from decobench.run import cloak_track

        cfg, params = cloak_track.resolve_cloak(cell.profile, methods.get(cell.method), cell.overrides())
        cfg = cloak_track.with_cloak_attacks(cfg, cell.attacks)
        return cloak_track.run_folder(out, cell.method, cfg, params, cell.seed, where)[1]
    cfg, _ = resolve(cell.profile, methods.get(cell.method), cell.method, cell.overrides(), cell.sensitive)
    cfg = with_attacks(cfg, cell.track, cell.attacks)
    return run_folder(Path(out), cell.setup, cell.method, cell.regime, cfg, cell.seed, where)


def cell_where(cell: Cell, run_kwargs: dict | None) -> dict:
    """The suite's base model, data root and device for this cell; without run kwargs the embedded default on
    CPU (a board or plan reading committed results on a machine with CUDA still finds them)."""
    from decobench.run.identity import DEFAULT_WHERE, where_of

    if run_kwargs is None:
        return dict(DEFAULT_WHERE)
    kw = run_kwargs
    return where_of(kw.get("base_name", "tiny-synthface"), kw.get("data_root"), kw.get("device", "auto"), cell.track)


def cell_stem(cell: Cell, run_kwargs: dict | None = None) -> str:
    """The name of the cell's lock, log and failure record: its id, and the where-tag (a CUDA failure is not a
    CPU one)."""
    from decobench.run.identity import where_tag

    return cell.id + where_tag(cell_where(cell, run_kwargs))


def suite_dir(out: str | Path) -> Path:
    return Path(out) / ".suite"


def status(cell: Cell, out: str | Path, run_kwargs: dict | None = None) -> str:
    """done (its result.json exists and the code at hand would make the same), stale (made by other method
    code or another attack version: run again), failed (its last attempt raised) or todo."""
    path = cell_dir(cell, out, run_kwargs) / "result.json"
    if path.is_file():
        return "stale" if stale(path, cell_where(cell, run_kwargs)) else "done"
    if (suite_dir(out) / "failed" / f"{cell_stem(cell, run_kwargs)}.json").is_file():
        return "failed"
    return "todo"


def stale(path: Path, where: dict | None = None) -> str | None:
    """Why a finished cell's result is not what the code at hand makes (None when it is): other method code
    (method_version), another attack version, a comparability key that does not recompute, or, given the cell's
    ``where`` (identity.where_of), another device type (a CUDA result in a CPU cell's folder: folders made before
    the where-tag)."""
    from decobench.registry import RegistryError, attacks
    from decobench.results.build import comparability_key
    from decobench.results.migrate import migrate

    try:
        r = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        return f"unreadable ({type(exc).__name__}: {exc})"
    if not isinstance(r, dict):
        return "unreadable (not a JSON object)"
    if "method_version" not in r:  # not a result file decobench can judge (a test's stand-in)
        return None
    try:
        if where is not None and (made_on := str(r["hardware"]["device"]).split(":")[0]) != where["device"]:
            return f"made on {made_on}, the cell is for {where['device']}"
        now = _version_now(r["method"], r.get("track", "data"))
        if r["method_version"] != now:
            return f"made by other method code ({r['method_version']}, now {now})"
        old = [n for n, a in r["attacks"].items() if n in attacks.names() and attacks.get(n).version != a["version"]]
        if old:
            return f"made by another version of attack(s) {', '.join(old)}"
        if comparability_key(migrate(r)) != r["comparability_key"]:
            return "its comparability key does not recompute"
    except RegistryError as exc:  # its method is not registered here (a plugin not installed): cannot be judged
        return f"its method is not registered ({' '.join(str(exc).split())[:200]})"
    except (KeyError, TypeError) as exc:
        return f"incomplete ({type(exc).__name__}: {exc})"
    except ValueError as exc:  # ResultValidationError: a schema it does not migrate, a field it lacks
        return f"invalid ({' '.join(str(exc).split())[:200]})"
    return None


@functools.cache
def _version_now(method: str, track: str) -> str:
    """The method_version the code loaded here gives a method on a track: once per process, not once per cell."""
    from decobench.registry import methods
    from decobench.run.cloak_track import cloak_version
    from decobench.run.identity import method_version

    cls = methods.get(method)
    return cloak_version(cls) if track == "cloak" else method_version(cls, track)


@contextmanager
def claim(cell: Cell, out: str | Path, wait: bool, run_kwargs: dict | None = None):
    """Hold the cell's lock for the block; yields False (without blocking) when another worker holds it."""
    path = suite_dir(out) / "locks" / f"{cell_stem(cell, run_kwargs)}.lock"
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a+") as f:
        try:
            fcntl.flock(f, fcntl.LOCK_EX | (0 if wait else fcntl.LOCK_NB))
        except BlockingIOError:
            yield False
            return
        try:
            yield True
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


@dataclass
class Estimate:
    """Seconds per cell from finished cells (their result.json's total time), by track, method, setup and
    regime, then by track, setup and regime (a setup-C cell trains on and scores two worlds; a B or V+G cell
    reuses a LoRA: the setup says more about a cell's cost than the method), then by track and method, then by
    track, then overall: the suite's ETA sums it over the cells left."""

    seconds: dict[tuple, list[float]] = field(default_factory=dict)

    @staticmethod
    def _keys(cell: Cell) -> tuple[tuple, ...]:
        t = (cell.track, cell.profile)
        return (t + (cell.method, cell.setup, cell.regime), t + (cell.setup, cell.regime), t + (cell.method,), t, ())

    def add(self, cell: Cell, s: float) -> None:
        for key in self._keys(cell):
            self.seconds.setdefault(key, []).append(s)

    def of(self, cell: Cell) -> float | None:
        for key in self._keys(cell):
            if self.seconds.get(key):
                return sum(self.seconds[key]) / len(self.seconds[key])
        return None

    def left(self, cells: list[Cell]) -> float | None:
        per = [self.of(c) for c in cells]
        return None if any(p is None for p in per) else sum(per)


def _seconds_of(cell: Cell, out, run_kwargs: dict | None = None) -> float | None:
    try:
        return float(json.loads((cell_dir(cell, out, run_kwargs) / "result.json").read_text())["stage_seconds"]["total"])
    except (OSError, KeyError, ValueError, TypeError):
        return None


def _now_on(folder: Path) -> float:
    """The time as the file system holding ``folder`` stamps files (a shared one may keep another clock)."""
    import os
    import tempfile

    fd, name = tempfile.mkstemp(dir=folder, prefix=".now-")
    try:
        return os.fstat(fd).st_mtime
    finally:
        os.close(fd)
        os.unlink(name)


def _hms(s: float | None) -> str:
    if s is None:
        return "ETA after the first cell"
    s = int(round(s))
    return f"ETA {s // 3600}:{s % 3600 // 60:02d}:{s % 60:02d}"


@dataclass
class Outcome:
    ran: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)      # done before this invocation
    failed: dict[str, str] = field(default_factory=dict)  # cell id -> error line
    left: list[str] = field(default_factory=list)         # busy with another worker, not waited for (no_wait)
    not_started: list[str] = field(default_factory=list)  # would not finish within the time limit


def run_cell(cell: Cell, out, run_kwargs: dict, log) -> None:
    """One cell through ``decobench run``'s code path (the default runner; tests pass their own)."""
    from decobench.run.runner import run_benchmark

    run_benchmark(cell.method, cell.setup, cell.regime, cell.seed, cell.profile,
                  out=out, overrides=cell.overrides(), sensitive=cell.sensitive,
                  attacks=list(cell.attacks) if cell.attacks else None, log=log, track=cell.track, **run_kwargs)


def run_suite(cells: list[Cell], out: str | Path, run_kwargs: dict | None = None, echo=print,
              runner=None, progress: bool = True, wait: bool = True, time_limit: float | None = None) -> Outcome:
    """Run every cell not yet done (see the module doc); returns what ran, what was done, what failed.
    ``wait=False``: leave the cells another worker holds to it and return once no free cell remains (a worker
    that moves on to another grid, or a job array's job), instead of waiting to redo one its worker dies in.
    ``time_limit`` (seconds from now: a job's wall-time limit): start no cell that the estimate from finished
    cells of its kind says would not finish in the time left (a cell of a kind not yet timed is started), and
    wait for no busy one; a cell killed at the limit would lose its unfinished stages' work."""
    from tqdm.auto import tqdm

    # no run kwargs: the embedded default on CPU, as status() reads it
    out, run_kwargs, runner = Path(out), run_kwargs or {"device": "cpu"}, runner or run_cell
    sd = suite_dir(out)
    for sub in ("logs", "failed", "locks"):
        (sd / sub).mkdir(parents=True, exist_ok=True)
    outcome, estimate = Outcome(), Estimate()
    started = _now_on(sd)  # the file system's clock: failure records of other workers are stamped by it
    deadline = None if time_limit is None else time.monotonic() + time_limit
    todo = []
    for c in cells:
        if status(c, out, run_kwargs) == "done":
            outcome.skipped.append(c.id)
            if (s := _seconds_of(c, out, run_kwargs)) is not None:
                estimate.add(c, s)
        else:
            todo.append(c)
    echo(f"suite: {len(cells)} cells, {len(outcome.skipped)} done already, {len(todo)} to run; logs in {sd / 'logs'}")
    bar = tqdm(total=len(todo), unit="cell", desc="suite", disable=not progress or not todo,
               bar_format="{desc} {n_fmt}/{total_fmt} |{bar}| {elapsed} {postfix}")
    bar.set_postfix_str(_hms(estimate.left(todo)))

    def attempt(cell: Cell, wait: bool) -> bool:
        if deadline is not None and (est := estimate.of(cell)) is not None and time.monotonic() + est > deadline:
            outcome.not_started.append(cell.id)
            return True
        with claim(cell, out, wait, run_kwargs) as mine:
            if not mine:
                return False
            failed = sd / "failed" / f"{cell_stem(cell, run_kwargs)}.json"
            if status(cell, out, run_kwargs) == "done":  # another worker finished it while this one waited
                outcome.skipped.append(cell.id)
                return True
            if failed.is_file() and failed.stat().st_mtime >= started:  # another worker's attempt failed
                outcome.failed[cell.id] = json.loads(failed.read_text())["error"]  # in this invocation: not again
                return True
            t0 = time.time()
            with open(sd / "logs" / f"{cell_stem(cell, run_kwargs)}.log", "a") as logf:
                logf.write(f"== {time.strftime('%Y-%m-%d %H:%M:%S')} {cell.command()}\n")
                try:
                    runner(cell, out, run_kwargs, lambda *a: print(*a, file=logf, flush=True))
                except Exception as exc:  # noqa: BLE001 - one cell's failure is recorded, the suite goes on
                    logf.write(traceback.format_exc())
                    line = " ".join(f"{type(exc).__name__}: {exc}".split())
                    outcome.failed[cell.id] = line
                    atomic_write_json(failed, {"cell": asdict(cell), "command": cell.command(), "error": line,
                                               "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())})
                    bar.write(f"FAILED {cell.id}: {line}")
                    return True
            failed.unlink(missing_ok=True)
            outcome.ran.append(cell.id)
            estimate.add(cell, _seconds_of(cell, out, run_kwargs) or time.time() - t0)
            return True

    busy = []
    for k, cell in enumerate(todo):
        if not attempt(cell, wait=False):
            busy.append(cell)  # another worker has it: come back at the end
        bar.update(0 if cell in busy else 1)
        bar.set_postfix_str(_hms(estimate.left([c for c in todo[k + 1:]])))
    for cell in busy:  # wait for the other worker; redo the cell only if it did not finish it
        if wait and deadline is None:
            attempt(cell, wait=True)
        elif not attempt(cell, wait=False):  # still busy: its worker has it
            outcome.left.append(cell.id)
        bar.update(1)
    bar.close()
    return outcome
