"""Method registry: ``@register_method`` on a class, ``create_method("name.preset", **overrides)``.

Modelled on timm's registry: a decorator records the class under its ``name``; a preset is a
named dict of constructor keywords declared on the class (``presets = {"default": {...}}``);
the factory is thin and every error lists the valid names.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

from .errors import ZSLError

if TYPE_CHECKING:  # pragma: no cover
    from .base import ZSLMethod

_METHODS: dict[str, type] = {}
_LOADED = False


def register_method(cls):
    """Class decorator: register a :class:`~zsl.base.ZSLMethod` subclass under ``cls.name``."""
    name = getattr(cls, "name", None)
    if not name or not isinstance(name, str):
        raise TypeError(f"{cls.__qualname__} needs a string class attribute `name` to be registered")
    if name in _METHODS and _METHODS[name] is not cls:
        raise ValueError(
            f"method name {name!r} is registered twice ({_METHODS[name].__qualname__}, {cls.__qualname__})"
        )
    if "default" not in getattr(cls, "presets", {}):
        raise TypeError(f"{cls.__qualname__} must declare a 'default' preset")
    axes = [set(cls.presets), set(cls.dataset_presets), set(cls.ablations)]
    clash = (axes[0] & axes[1]) | (axes[0] & axes[2]) | (axes[1] & axes[2])
    if clash:
        raise TypeError(f"{cls.__qualname__}: preset names {sorted(clash)} appear on more than one axis")
    _METHODS[name] = cls
    return cls


def _ensure_loaded() -> None:
    global _LOADED
    if not _LOADED:
        _LOADED = True
        from . import methods  # noqa: F401  (importing registers every method)


def list_methods(*, retrieval: bool | None = None) -> list[str]:
    """Sorted names of the registered methods (optionally only retrieval/non-retrieval ones)."""
    _ensure_loaded()
    names = sorted(_METHODS)
    if retrieval is not None:
        names = [n for n in names if bool(_METHODS[n].tags.get("retrieval")) == retrieval]
    return names


def list_presets(name: str) -> list[str]:
    return sorted(get_method_class(name).all_presets())


def get_method_class(name: str) -> type[ZSLMethod]:
    _ensure_loaded()
    base = name.split(".", 1)[0]
    if base not in _METHODS:
        raise ZSLError(f"unknown method {base!r}; valid methods: {', '.join(sorted(_METHODS))}")
    return _METHODS[base]


def create_method(spec: str, **overrides) -> ZSLMethod:
    """Build a method from ``"name"`` or ``"name.preset"``; keyword overrides win over the preset."""
    base, _, preset = spec.partition(".")
    cls = get_method_class(base)
    preset = preset or "default"
    presets = cls.all_presets()
    if preset not in presets:
        raise ZSLError(f"unknown preset {preset!r} for method {base!r}; valid presets: {', '.join(sorted(presets))}")
    params = {**presets[preset], **overrides}
    unknown = sorted(set(params) - set(cls.param_names()))
    if unknown:
        raise ZSLError(f"{spec}: unknown parameter(s) {', '.join(unknown)}; valid: {', '.join(cls.param_names())}")
    method = cls(**params)
    method.validate_params()
    return method
