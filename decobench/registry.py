"""One generic plugin registry for methods, attacks, datasets and setups.

Built-in plugins register with the ``@REGISTRY.register()`` decorator when their module is
imported; third-party packages declare an entry point in the registry's group
(``decobench.methods``, ``decobench.attacks``, ``decobench.datasets``, ``decobench.setups``)
pointing at either the plugin object itself or a module whose import registers it.
"""

from __future__ import annotations

import difflib
import importlib
import importlib.metadata as md
from dataclasses import dataclass
from typing import Any, Callable, Iterable


class RegistryError(Exception):
    """Base class of every registry error."""


class DuplicateNameError(RegistryError):
    pass


class UnknownNameError(RegistryError, KeyError):
    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0])


class PluginImportError(RegistryError):
    pass


@dataclass(frozen=True)
class Entry:
    name: str
    obj: Any
    summary: str
    origin: str  # "built-in (module)" or "package==version"


def _first_doc_line(obj: Any) -> str:
    doc = getattr(obj, "__doc__", None) or ""
    for line in doc.strip().splitlines():
        if line.strip():
            return line.strip()
    return ""


class Registry:
    """A name → plugin mapping of one kind, with lazy built-ins and entry points.

    Args:
        kind: plural noun used in messages ("methods").
        group: entry-point group that third-party packages register under.
        builtin_modules: modules imported on first use; importing them registers the built-ins.
        check: optional callable(obj) -> str | None returning why ``obj`` is not a valid plugin.
    """

    def __init__(self, kind: str, group: str, builtin_modules: Iterable[str] = (),
                 check: Callable[[Any], str | None] | None = None):
        self.kind = kind
        self.group = group
        self._builtin_modules = tuple(builtin_modules)
        self._check = check
        self._entries: dict[str, Entry] = {}
        self._loaded = False
        self._loading = False

    # -- registration -------------------------------------------------------------------------
    def register(self, name: str | None = None, *, summary: str | None = None):
        """Decorator: ``@methods.register("ce")`` registers the decorated object as ``ce``."""

        def deco(obj):
            self.add(name or getattr(obj, "name", None) or obj.__name__, obj, summary=summary)
            return obj

        return deco

    def add(self, name: str, obj: Any, *, summary: str | None = None, origin: str | None = None) -> None:
        if not isinstance(name, str) or not name:
            raise RegistryError(f"{self.kind}: plugin name must be a non-empty string, got {name!r}")
        if name in self._entries:
            prev = self._entries[name]
            raise DuplicateNameError(
                f"{self.kind}: the name {name!r} is already registered by {prev.origin}; "
                f"choose another name for {getattr(obj, '__module__', '?')}.{getattr(obj, '__qualname__', obj)!s}")
        if self._check is not None:
            problem = self._check(obj)
            if problem:
                raise RegistryError(f"{self.kind}: {name!r} is not a valid plugin: {problem}")
        module = getattr(obj, "__module__", "?")
        self._entries[name] = Entry(name, obj, summary or _first_doc_line(obj),
                                    origin or f"built-in ({module})")

    # -- lookup ----------------------------------------------------------------------------------
    def _ensure_loaded(self) -> None:
        if self._loaded or self._loading:
            return
        self._loading = True
        try:
            for mod in self._builtin_modules:
                importlib.import_module(mod)
            for ep in md.entry_points(group=self.group):
                self._load_entry_point(ep)
            self._loaded = True
        finally:
            self._loading = False

    def _load_entry_point(self, ep: md.EntryPoint) -> None:
        dist = getattr(ep, "dist", None)
        origin = f"{dist.name}=={dist.version}" if dist is not None else f"entry point {ep.value}"
        before = set(self._entries)
        try:
            obj = ep.load()
        except Exception as exc:  # the cause is re-raised with the plugin named, never swallowed
            raise PluginImportError(
                f"{self.kind} plugin {ep.name!r} from {origin} ({ep.value}) failed to import: "
                f"{type(exc).__name__}: {exc}") from exc
        added = set(self._entries) - before
        if added:  # the import registered itself with decorators: record where it came from
            for name in added:
                e = self._entries[name]
                self._entries[name] = Entry(e.name, e.obj, e.summary, origin)
            return
        if isinstance(obj, type(importlib)):
            raise PluginImportError(
                f"{self.kind} plugin {ep.name!r} from {origin}: module {ep.value} registered nothing")
        self.add(ep.name, obj, origin=origin)

    def get(self, name: str) -> Any:
        return self.entry(name).obj

    def entry(self, name: str) -> Entry:
        self._ensure_loaded()
        try:
            return self._entries[name]
        except KeyError:
            close = difflib.get_close_matches(name, list(self._entries), n=3, cutoff=0.5)
            hint = f"; did you mean {', '.join(close)}?" if close else ""
            known = ", ".join(sorted(self._entries)) or "none"
            raise UnknownNameError(f"unknown {self.kind[:-1] if self.kind.endswith('s') else self.kind} "
                                   f"{name!r}{hint} (known: {known})") from None

    def __contains__(self, name: str) -> bool:
        self._ensure_loaded()
        return name in self._entries

    def names(self) -> list[str]:
        self._ensure_loaded()
        return sorted(self._entries)

    def entries(self) -> list[Entry]:
        self._ensure_loaded()
        return [self._entries[n] for n in sorted(self._entries)]

    def unregister(self, name: str) -> None:
        """Remove a plugin (for tests and interactive use)."""
        self._entries.pop(name, None)


def _method_check(obj):
    from decobench.methods.base import method_check
    return method_check(obj)


methods = Registry("methods", "decobench.methods", check=_method_check,
                   builtin_modules=("decobench.methods.baseline", "decobench.methods.ce",
                                    "decobench.methods.ce_mask", "decobench.methods.metric",
                                    "decobench.methods.ce_dp", "decobench.methods.adv_recon",
                                    "decobench.methods.mtl_adv_dp", "decobench.methods.dplh",
                                    "decobench.methods.cloaks"))
def _attack_check(obj):
    from decobench.attacks.base import attack_check
    return attack_check(obj)


attacks = Registry("attacks", "decobench.attacks", check=_attack_check,
                   builtin_modules=("decobench.attacks.cls", "decobench.attacks.pt", "decobench.attacks.probe",
                                    "decobench.attacks.quality", "decobench.attacks.linkage",
                                    "decobench.attacks.mia_generator", "decobench.attacks.inversion",
                                    "decobench.attacks.mia_model", "decobench.attacks.feature_inversion",
                                    "decobench.attacks.heads", "decobench.attacks.fr_protection"))
datasets = Registry("datasets", "decobench.datasets",
                    builtin_modules=("decobench.data.synthfaces.dataset", "decobench.data.fairface",
                                     "decobench.data.utkface", "decobench.data.celeba"))
setups = Registry("setups", "decobench.setups", builtin_modules=("decobench.setups",))

ALL = {"methods": methods, "attacks": attacks, "datasets": datasets, "setups": setups}
