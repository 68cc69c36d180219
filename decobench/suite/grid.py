"""The suite's grid: blocks of methods x setups x regimes x seeds on one track, expanded into cells.

A grid is a TOML file (or a named preset) of ``[[block]]`` tables; every list multiplies. Keys at the
top level are defaults for every block::

    seeds = [0, 1, 2]
    profile = "embedded"

    [[block]]
    track = "data"
    methods = "all"            # every registered method that runs on the track
    setups = ["A", "B", "C"]
    regimes = ["G", "V+G"]

    [[block]]
    track = "model"
    methods = ["baseline", "dplh"]
    setups = ["A"]
    set = { "eval.mia_references" = 2 }

A cell is one ``decobench run``; its id is stable (it names the cell's lock and log), and the cells'
order is the sorted order of their ids, so ``--shard K/N`` splits the same grid the same way on every
machine.
"""

from __future__ import annotations

import hashlib
import json
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

from decobench.run.config import PROFILES, SENSITIVE, ConfigError
from decobench.setups import REGIMES

BLOCK_KEYS = {"track", "methods", "setups", "regimes", "seeds", "profile", "sensitive", "attacks", "set", "sweep"}
TRACKS = ("data", "model", "cloak")

# the cloak track's targets named explicitly, so committed figures never depend on the optional dlib extra
ZOO_TARGETS = "resnet-arcface,resnet-cosface,resnet-softmax,mobilenet-softmax,senet-arcface,senet-cosface,senet-softmax"

PRESETS = {
    # the committed embedded board: every data-track method on every setup and regime, the model track on A, and
    # the cloak track's Table 1 at 100 people (leaderboard/grids/cloaks-100.toml)
    "embedded": {"seeds": [0, 1, 2], "profile": "embedded", "block": [
        {"track": "data", "methods": "all", "setups": ["A", "B", "C"], "regimes": ["G", "V+G"]},
        {"track": "model", "methods": "all", "setups": ["A"], "set": {"eval.mia_references": 2}},
        {"track": "cloak", "methods": ["fi_uap", "ga_fi_uap", "opom_convex", "ga_opom_convex"],
         "set": {"cloak.identities": 100, "cloak.targets": ZOO_TARGETS},
         "sweep": {"method.surrogate": ["resnet-arcface", "resnet-cosface", "resnet-softmax"]}},
    ]},
    # the same grid at the paper's settings (real data and SD v1-5: --data-root, --base sd15 --base-path)
    "paper": {"seeds": [0, 1, 2], "profile": "paper", "block": [
        {"track": "data", "methods": "all", "setups": ["A", "B", "C"], "regimes": ["G", "V+G"]},
        {"track": "model", "methods": "all", "setups": ["A"]},
    ]},
    # DECO-Bench's Tr+V+G regime (the generator's own training images are released too; PT does not apply)
    "trvg": {"seeds": [0, 1, 2], "profile": "embedded", "block": [
        {"track": "data", "methods": "all", "setups": ["A", "B", "C"], "regimes": ["Tr+V+G"],
         "attacks": "cls,probe,quality,identity_linkage,mia_generator"},
    ]},
    # DECO-Bench A.2: training and evaluation on frontal faces only (SynthFaces' profile flag; dlib's frontal face
    # detector on real data, with the dlib extra)
    "frontal": {"seeds": [0, 1, 2], "profile": "embedded", "block": [
        {"track": "data", "methods": "all", "setups": ["A", "B", "C"], "regimes": ["G", "V+G"],
         "set": {"faces": "frontal"}},
    ]},
    # the GA-OPOM paper's Table 1: three surrogates x FI-UAP, OPOM-ConvexHull and their GA variants
    "cloaks": {"seeds": [0, 1, 2], "profile": "embedded", "block": [
        {"track": "cloak", "methods": ["fi_uap", "ga_fi_uap", "opom_convex", "ga_opom_convex"],
         "set": {"cloak.targets": ZOO_TARGETS},
         "sweep": {"method.surrogate": ["resnet-arcface", "resnet-cosface", "resnet-softmax"]}},
    ]},
    # a small grid for trying the suite out: two methods, one setup, three seeds at the quick profile
    "quick": {"seeds": [0, 1, 2], "profile": "quick", "block": [
        {"track": "data", "methods": ["baseline", "ce"], "setups": ["A"], "regimes": ["G"]},
    ]},
}


@dataclass(frozen=True)
class Cell:
    track: str
    method: str
    setup: str
    regime: str
    seed: int
    profile: str
    sensitive: str
    attacks: tuple[str, ...] | None = None
    sets: tuple[tuple[str, str], ...] = field(default_factory=tuple)

    @property
    def id(self) -> str:
        """Readable and unique: what differs between cells of a grid is in the name, the rest in a short hash."""
        rest = hashlib.sha256(json.dumps([self.sensitive, self.attacks, self.sets]).encode()).hexdigest()[:8]
        regime = self.regime.replace("+", "")
        return f"{self.track}-{self.setup}-{self.method}-{regime}-{self.profile}-seed{self.seed}-{rest}"

    def overrides(self) -> dict:
        return dict(self.sets)

    def command(self) -> str:
        """The ``decobench run`` line that computes this cell alone."""
        parts = ["decobench run", f"--method {self.method}", f"--track {self.track}"]
        if self.track != "cloak":
            parts.insert(2, f"--setup {self.setup}")
        if self.track == "data":
            parts.append(f"--regime {self.regime}")
        parts += [f"--seed {self.seed}", f"--profile {self.profile}", f"--sensitive {self.sensitive}"]
        if self.attacks:
            parts.append(f"--attacks {','.join(self.attacks)}")
        parts += [f"--set {k}={v}" for k, v in self.sets]
        return " ".join(parts)


def _list(value, key: str, where: str) -> list:
    if isinstance(value, (str, int)):
        return [value]
    if isinstance(value, list) and value:
        return value
    raise ConfigError(f"{where}: {key} must be a value or a non-empty list, got {value!r}")


def _block_cells(block: dict, where: str) -> list[Cell]:
    from decobench.registry import methods as method_registry
    from decobench.registry import setups as setup_registry

    unknown = set(block) - BLOCK_KEYS
    if unknown:
        raise ConfigError(f"{where}: unknown key(s) {', '.join(sorted(unknown))}; a block takes "
                          f"{', '.join(sorted(BLOCK_KEYS))}")
    track = block.get("track", "data")
    if track not in TRACKS:
        raise ConfigError(f"{where}: track {track!r} is not one of {', '.join(TRACKS)}")
    names = block.get("methods", "all")
    if names == "all":
        names = [m for m in method_registry.names() if track in method_registry.get(m).tracks]
    names = [str(m) for m in _list(names, "methods", where)]
    for m in names:
        cls = method_registry.get(m)  # an unknown name is a RegistryError naming the close ones
        if track not in cls.tracks:
            raise ConfigError(f"{where}: {m} runs on the {', '.join(cls.tracks)} track(s), not {track}")
    if track == "cloak":  # one protocol (Privacy-Commons): no setup, no regime
        setups, regimes = ["PC"], ["cloak"]
    else:
        setups = [str(s) for s in _list(block.get("setups", ["A"]), "setups", where)]
        for s in setups:
            setup_registry.get(s)
    regimes = regimes if track == "cloak" else ["model"] if track == "model" else [str(r) for r in _list(block.get("regimes", ["G"]), "regimes", where)]
    for r in regimes:
        if track == "data" and r not in REGIMES:
            raise ConfigError(f"{where}: regime {r!r} is not one of {', '.join(REGIMES)}")
    seeds = _list(block.get("seeds", [0, 1, 2]), "seeds", where)
    if not all(isinstance(s, int) and not isinstance(s, bool) and s >= 0 for s in seeds):
        raise ConfigError(f"{where}: seeds must be non-negative integers, got {seeds!r}")
    profile = block.get("profile", "embedded")
    if profile not in PROFILES:
        raise ConfigError(f"{where}: profile {profile!r} is not one of {', '.join(PROFILES)}")
    sensitive = block.get("sensitive", "race")
    if sensitive not in SENSITIVE:
        raise ConfigError(f"{where}: sensitive {sensitive!r} is not one of {', '.join(SENSITIVE)}")
    attacks = block.get("attacks")
    if attacks is not None:  # in the track's suite order, None for the default suite: one cell id per folder
        attacks = _suite(track, tuple(a.strip() for a in (attacks.split(",") if isinstance(attacks, str) else attacks)
                                      if a.strip()))
    sets = block.get("set", {})
    if not isinstance(sets, dict):
        raise ConfigError(f"{where}: set must be a table of KEY = VALUE, got {sets!r}")
    sweep = block.get("sweep", {})
    if not isinstance(sweep, dict) or not all(isinstance(v, list) and v for v in sweep.values()):
        raise ConfigError(f"{where}: sweep must be a table of KEY = [values, ...], got {sweep!r}")
    if set(sweep) & set(sets):
        raise ConfigError(f"{where}: {', '.join(sorted(set(sweep) & set(sets)))} is both set and swept; keep one")
    points = [dict(sets)]
    for key, values in sweep.items():  # every combination of the swept values, the set ones kept
        points = [{**p, key: v} for p in points for v in values]

    def text(v):
        return str(v).lower() if isinstance(v, bool) else str(v)
    return [Cell(track, m, s, r, int(seed), profile, sensitive, attacks,
                 tuple(sorted((str(k), text(v)) for k, v in point.items())))
            for m in names for s in setups for r in regimes for seed in seeds for point in points]


def expand(grid: dict, where: str = "grid") -> list[Cell]:
    """A grid (parsed TOML or a preset) -> its cells, checked (names, tracks, keys) and sorted by id."""
    blocks = grid.get("block")
    if not isinstance(blocks, list) or not blocks:
        raise ConfigError(f"{where}: no [[block]] tables; a grid lists at least one block of cells")
    defaults = {k: v for k, v in grid.items() if k != "block"}
    unknown = set(defaults) - BLOCK_KEYS
    if unknown:
        raise ConfigError(f"{where}: unknown top-level key(s) {', '.join(sorted(unknown))}; "
                          f"it takes block and defaults for {', '.join(sorted(BLOCK_KEYS))}")
    cells = {}
    for i, block in enumerate(blocks):
        for c in _block_cells({**defaults, **block}, f"{where}, block {i + 1}"):
            cells[c.id] = c  # the same cell named by two blocks runs once
    return [cells[k] for k in sorted(cells)]


def _suite(track: str, attacks: tuple[str, ...]) -> tuple[str, ...] | None:
    from decobench.run.cloak_track import CloakTrackConfig
    from decobench.run.config import EvalConfig, in_suite_order

    default = {"data": EvalConfig().attacks, "model": EvalConfig().model_attacks,
               "cloak": CloakTrackConfig().attacks}[track]
    ordered = in_suite_order(attacks, default)
    return None if ordered == tuple(default) else ordered


def load_grid(preset: str | None = None, path: str | Path | None = None) -> list[Cell]:
    if (preset is None) == (path is None):
        raise ConfigError("give one of --preset (" + ", ".join(PRESETS) + ") or --grid FILE")
    if preset is not None:
        if preset not in PRESETS:
            raise ConfigError(f"unknown preset {preset!r}; choose one of {', '.join(PRESETS)}")
        return expand(PRESETS[preset], f"preset {preset}")
    try:
        grid = tomllib.loads(Path(path).read_text())
    except FileNotFoundError:
        raise ConfigError(f"grid file {path} does not exist") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"grid file {path} is not valid TOML: {exc}") from None
    return expand(grid, str(path))


def parse_shard(value: str | None) -> tuple[int, int]:
    """``K/N`` (1-based) -> (K, N); None -> (1, 1)."""
    if value is None:
        return 1, 1
    k, sep, n = value.partition("/")
    try:
        k, n = int(k), int(n)
    except ValueError:
        k = n = 0
    if not sep or n < 1 or not 1 <= k <= n:
        raise ConfigError(f"--shard {value!r}: give K/N with 1 <= K <= N, e.g. --shard 2/8 (SLURM: "
                          f"--shard $((SLURM_ARRAY_TASK_ID+1))/$SLURM_ARRAY_TASK_COUNT)")
    return k, n


def shard(cells: list[Cell], k: int, n: int) -> list[Cell]:
    """Round-robin over the sorted cells: disjoint shards whose union is the grid, similar in cost."""
    return cells[k - 1::n]
