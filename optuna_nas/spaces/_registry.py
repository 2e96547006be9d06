"""The registry of search spaces, and the argument check every ``create`` shares."""

from __future__ import annotations

import inspect
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from optuna_nas.spaces._base import SearchSpace


_REGISTRY: dict[str, type[SearchSpace]] = {}


def register(cls: type[SearchSpace]) -> type[SearchSpace]:
    """Adds a space class to the registry under ``cls.name`` (usable as a decorator)."""
    _REGISTRY[cls.name] = cls
    return cls


def available() -> list[str]:
    """The names :func:`create` accepts, sorted."""
    return sorted(_REGISTRY)


def create(name: str, **kwargs: Any) -> SearchSpace:
    """Creates a search space by registry name.

    Args:
        name: One of ``chain``, ``darts``, ``hierarchical``, ``multibranch`` and ``nb201``.
        **kwargs: The space's own arguments (see each class).

    Raises:
        ValueError: For an unknown name or invalid arguments; the message says what to fix.

    Example:
        .. code-block:: python

            from optuna_nas import spaces

            space = spaces.create("nb201", channels=8, cells_per_stage=1)
    """
    try:
        cls = _REGISTRY[name]
    except KeyError:
        raise ValueError(
            f"unknown space {name!r}; choose one of: {', '.join(available())}"
        ) from None
    check_arguments(cls, kwargs, f"space {name!r}")
    return cls(**kwargs)


def check_arguments(
    factory: Any, kwargs: Mapping[str, Any], what: str, *, partial: bool = False
) -> None:
    """Checks that ``factory`` accepts ``kwargs`` by its signature, before calling it.

    Binding the signature, rather than catching ``TypeError`` from the call, keeps a
    ``TypeError`` raised inside a constructor from being reported as a bad argument.

    Args:
        factory: A class or function.
        kwargs: The keyword arguments it is to be called with.
        what: How the error names it, e.g. ``"sampler 'gp'"``.
        partial: Check only that every argument is known; the caller adds the rest.

    Raises:
        ValueError: Naming the argument that is unknown or missing, and the ones that exist.
    """
    signature = inspect.signature(factory)
    try:
        if partial:
            signature.bind_partial(**kwargs)
        else:
            signature.bind(**kwargs)
    except TypeError as err:
        names = [
            p.name
            for p in signature.parameters.values()
            if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)
        ]
        raise ValueError(
            f"invalid argument for {what}: {err}; its arguments are: {', '.join(names) or 'none'}"
        ) from None
    _check_types(factory, kwargs, what)


_SIMPLE: dict[str, type | tuple[type, ...]] = {
    "int": int,
    "float": (int, float),
    "bool": bool,
    "str": str,
}


def _check_types(factory: Any, kwargs: Mapping[str, Any], what: str) -> None:
    """Refuses a value whose type plainly contradicts the parameter's annotation.

    Only simple annotations are checked (``int``, ``float``, ``bool``, ``str``, a union of
    them with ``None``, and ``list``/``Sequence`` of them); anything else is left to the
    constructor.
    """
    signature = inspect.signature(factory)
    for key, value in kwargs.items():
        param = signature.parameters.get(key)
        if param is None or not isinstance(param.annotation, str):
            continue
        expected = _expected(param.annotation)
        if expected is None or _matches(value, expected):
            continue
        raise ValueError(
            f"invalid argument for {what}: {key} must be {param.annotation}, got {value!r} "
            f"({type(value).__name__})"
        )


def _expected(annotation: str) -> list[tuple[str, str | None]] | None:
    """``annotation`` as (kind, item kind) alternatives, or ``None`` if not simple."""
    alternatives: list[tuple[str, str | None]] = []
    for part in (p.strip() for p in annotation.split("|")):
        if part == "None":
            alternatives.append(("None", None))
        elif part in _SIMPLE:
            alternatives.append((part, None))
        elif part.startswith(("list[", "Sequence[")) and part.endswith("]"):
            item = part[part.index("[") + 1 : -1].strip()
            if item not in _SIMPLE:
                return None
            alternatives.append(("list", item))
        else:
            return None
    return alternatives


def _matches(value: Any, expected: list[tuple[str, str | None]]) -> bool:
    for kind, item in expected:
        if kind == "None" and value is None:
            return True
        if kind == "list" and isinstance(value, (list, tuple)) and item is not None:
            if all(_is(v, item) for v in value):
                return True
        elif kind not in ("None", "list") and _is(value, kind):
            return True
    return False


def _is(value: Any, kind: str) -> bool:
    if kind in ("int", "float") and isinstance(value, bool):
        return False  # True is an int to Python, not to a user
    return isinstance(value, _SIMPLE[kind])
