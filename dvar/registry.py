"""Name -> class registries for tasks, objectives and decoders.

Each lives in a package with one module per entry; every module of the package is
imported on first lookup, so adding an entry is adding a file with a decorated class.
"""

from __future__ import annotations

import dataclasses
import importlib
import pkgutil
from typing import Any, Callable, Generic, TypeVar

from dvar.config import ConfigError
from dvar.errors import UnknownName

T = TypeVar("T", bound=type)


class Registry(Generic[T]):
    def __init__(self, kind: str, package: str, skip: tuple[str, ...] = ()):
        self.kind = kind
        self._package = package
        self._skip = skip
        self._classes: dict[str, T] = {}
        self._loaded = False

    def add(self, name: str, cls: T) -> T:
        if self._classes.get(name, cls) is not cls:
            raise ValueError(f"{self.kind} {name!r} registered twice")
        self._classes[name] = cls
        return cls

    def register(self, name: str) -> Callable[[T], T]:
        """Class decorator that also sets `cls.name`."""

        def decorate(cls: T) -> T:
            cls.name = name
            return self.add(name, cls)

        return decorate

    def _load(self) -> None:
        if not self._loaded:
            package = importlib.import_module(self._package)
            for info in pkgutil.iter_modules(package.__path__):
                if info.name not in self._skip:
                    importlib.import_module(f"{self._package}.{info.name}")
            self._loaded = True

    def names(self) -> list[str]:
        self._load()
        return sorted(self._classes)

    def classes(self) -> dict[str, T]:
        self._load()
        return dict(self._classes)

    def get(self, name: str) -> T:
        self._load()
        if name not in self._classes:
            raise UnknownName(f"unknown {self.kind} {name!r}; known {self.kind}s: {', '.join(self.names())}")
        return self._classes[name]

    def build(self, name: str, **settings: Any) -> Any:
        """An instance of dataclass entry `name` with `settings`; unknown settings are errors."""
        cls = self.get(name)
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(settings) - known)
        if unknown:
            raise ConfigError(f"{self.kind} {name!r}: unknown setting(s) {unknown}; known: {sorted(known)}")
        try:  # a setting out of range (checked by the dataclass) is a configuration error
            return cls(**settings)
        except ValueError as error:
            raise ConfigError(str(error)) from None
