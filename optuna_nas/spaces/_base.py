"""The contract every search space follows, and the :class:`Architecture` it produces.

A space describes its conditional structure once, in :meth:`SearchSpace._walk`, as a
sequence of decisions asked of a :class:`Chooser`. The same walk serves two purposes:

* :meth:`SearchSpace.suggest` runs it against an Optuna trial, so each decision becomes a
  ``trial.suggest_*`` call and only active decisions ever reach the study;
* :meth:`SearchSpace.decode` runs it against stored parameters, which validates them and
  rebuilds the genotype without re-running the user's objective.

Keeping one walk means the two can never disagree about which parameter is active.
"""

from __future__ import annotations

import abc
import inspect
import json
import math
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

from optuna_nas import _keys
from optuna_nas.spaces._choosers import (
    Chooser,
    ParamsChooser,
    ParamValue,
    TrialChooser,
    _IndexChooser,
    _RandomChooser,
)
from optuna_nas.spaces._registry import create
from optuna_nas.spaces._svg import Drawing, box_panel, draw_architecture

if TYPE_CHECKING:
    import numpy as np
    import optuna
    import torch.nn

# The trial user attributes holding the space's spec and the architecture's JSON.
SPACE_ATTR, ARCH_ATTR = _keys.TRIAL_SPACE, _keys.ARCHITECTURE


def _freeze(value: Any) -> Any:
    """Turns JSON-like values into hashable ones (lists to tuples, dicts to sorted items)."""
    if isinstance(value, Mapping):
        return tuple(sorted((str(k), _freeze(v)) for k, v in value.items()))
    if isinstance(value, (list, tuple)):
        return tuple(_freeze(v) for v in value)
    return value


def _thaw_config(items: tuple[tuple[str, Any], ...]) -> dict[str, Any]:
    def thaw(v: Any) -> Any:
        return [thaw(x) for x in v] if isinstance(v, tuple) else v

    return {k: thaw(v) for k, v in items}


@dataclass(frozen=True)
class Architecture:
    """One point of a search space: immutable, hashable and storable.

    An architecture is the space's name, the space's configuration and the active
    parameters; together they determine the network completely. Two architectures are
    equal when all three are, so an architecture can key a dict or fill a set for
    deduplication.

    Args:
        space: Registry name of the space, as accepted by :func:`optuna_nas.spaces.create`.
        config: The space's configuration as sorted ``(key, value)`` pairs.
        params: The active parameters as sorted ``(name, value)`` pairs.

    Prefer :meth:`SearchSpace.suggest`, :meth:`from_trial` or :meth:`from_dict` over calling
    the constructor; they validate the parameters against the space.

    Example:
        .. code-block:: python

            import optuna
            from optuna_nas import spaces

            space = spaces.create("chain", max_layers=4)
            study = optuna.create_study()
            trial = study.ask()
            arch = space.suggest(trial)
            model = arch.build(input_shape=(1, 40), num_classes=10)
    """

    space: str
    config: tuple[tuple[str, Any], ...]
    params: tuple[tuple[str, ParamValue], ...]

    @property
    def space_config(self) -> dict[str, Any]:
        """The keyword arguments that recreate the space."""
        return _thaw_config(self.config)

    @property
    def param_dict(self) -> dict[str, ParamValue]:
        """The active parameters as a dict."""
        return dict(self.params)

    def get_space(self) -> SearchSpace:
        """Recreates the space this architecture belongs to."""
        return create(self.space, **self.space_config)

    def scaled(self, *, cells: int | None = None, channels: int | None = None) -> Architecture:
        """The same cell in a network of another depth or width (cell transfer).

        Cells searched in a small network are retrained in a bigger one by repeating them
        more often and widening them (Zoph et al. 2018). The architecture's parameters stay
        the same; the space's size arguments change, as each space's
        :attr:`SearchSpace.scale_keys` names them.

        Args:
            cells: Number of cells (``cells_per_stage`` of ``nb201``, ``layers`` of
                ``darts``, ``cells`` of ``hierarchical``); ``None`` keeps it.
            channels: Channels of the first cells; ``None`` keeps them.

        Returns:
            A new architecture of the resized space.

        Raises:
            ValueError: If the space has no such size (``chain``, ``multibranch``: use a
                width multiplier) or the new size is invalid.

        References:
            B. Zoph, V. Vasudevan, J. Shlens and Q. V. Le. Learning Transferable
            Architectures for Scalable Image Recognition. CVPR 2018.
        """
        space = self.get_space()
        config = self.space_config
        for kind, value in (("cells", cells), ("channels", channels)):
            if value is None:
                continue
            key = space.scale_keys.get(kind)
            if key is None:
                raise ValueError(
                    f"space {self.space!r} has no {kind} to set; "
                    + (
                        f"it scales {' and '.join(space.scale_keys)}"
                        if space.scale_keys
                        else "scale its width with a width multiplier instead"
                    )
                )
            config[key] = value
        resized = create(self.space, **config)
        return resized.from_params(self.param_dict)

    @property
    def genotype(self) -> Any:
        """The space's decoded, structured view of the parameters (see each space)."""
        return self.get_space().decode(self.param_dict)

    def build(
        self, input_shape: Sequence[int], num_classes: int, *, width_multiplier: float = 1.0
    ) -> torch.nn.Module:
        """Builds the network as a fresh, randomly initialised ``torch.nn.Module``.

        Args:
            input_shape: Shape of one example without the batch dimension: ``(D,)`` for flat
                features, ``(C, L)`` for sequences and ``(C, H, W)`` for images.
            num_classes: Number of output logits.
            width_multiplier: Factor on the channels (or units) of every layer, a cheaper
                low-fidelity network below 1 (see :class:`optuna_nas.training.Fidelity`).
                Each width becomes ``max(1, round(width * width_multiplier))``; the
                architecture, and so the trial's parameters, stay the same.

        Raises:
            ValueError: If ``width_multiplier`` is not positive, or is not 1 for a space
                whose ``build_genotype`` takes no ``width_multiplier``.
        """
        if not width_multiplier > 0.0 or not math.isfinite(width_multiplier):
            raise ValueError(f"width_multiplier must be a number > 0, got {width_multiplier!r}")
        space = self.get_space()
        genotype = space.decode(self.param_dict)
        if width_multiplier == 1.0:
            return space.build_genotype(genotype, tuple(input_shape), num_classes)
        if "width_multiplier" not in inspect.signature(space.build_genotype).parameters:
            raise ValueError(
                f"space {self.space!r} ({type(space).__name__}) cannot scale its width; give "
                "its build_genotype a width_multiplier keyword, or use width_multiplier=1"
            )
        return space.build_genotype(
            genotype, tuple(input_shape), num_classes, width_multiplier=width_multiplier
        )

    def count_params(self, input_shape: Sequence[int], num_classes: int) -> int:
        """Number of trainable parameters of the network built for this input."""
        from optuna_nas.nn import count_params

        return count_params(self.build(input_shape, num_classes))

    def estimate_flops(self, input_shape: Sequence[int], num_classes: int) -> int:
        """Floating-point operations of one forward pass on one example.

        Counted by :class:`torch.utils.flop_counter.FlopCounterMode` (a multiply-add counts
        as two), so it covers matrix products and convolutions, the bulk of the cost.
        """
        from optuna_nas.nn import estimate_flops

        return estimate_flops(self.build(input_shape, num_classes), input_shape)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-serialisable dict; :meth:`from_dict` reverses it."""
        return {"space": self.space, "config": self.space_config, "params": self.param_dict}

    def to_json(self) -> str:
        """:meth:`to_dict` as a compact JSON string."""
        return json.dumps(self.to_dict(), sort_keys=True, separators=(",", ":"))

    def to_svg(self) -> str:
        """A drawing of the architecture as an SVG document (see
        :func:`optuna_nas.spaces.draw_architecture`)."""
        return draw_architecture(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Architecture:
        """Rebuilds an architecture from :meth:`to_dict` output, validating its parameters.

        Raises:
            ValueError: If the dict lacks a key, names an unknown space, or holds parameters
                that the space does not accept.
        """
        missing = {"space", "params"} - set(data)
        if missing:
            raise ValueError(
                f"architecture dict lacks {sorted(missing)}; expected the keys 'space', "
                "'config' and 'params' as written by Architecture.to_dict()"
            )
        space = create(str(data["space"]), **dict(data.get("config") or {}))
        return space.from_params(dict(data["params"]))

    @classmethod
    def from_json(cls, text: str) -> Architecture:
        """Parses :meth:`to_json` output."""
        return cls.from_dict(json.loads(text))

    @classmethod
    def from_trial(
        cls, trial: optuna.trial.FrozenTrial, space: SearchSpace | None = None
    ) -> Architecture:
        """Rebuilds the architecture a stored trial evaluated, without re-running it.

        Args:
            trial: A trial whose objective called ``space.suggest(trial)``.
            space: The space to decode with. By default the spec that
                :meth:`SearchSpace.suggest` saved in the trial's user attributes is used.

        Raises:
            ValueError: If the trial carries no space spec and none is given, or its
                parameters do not form an architecture of the space.
        """
        if space is None:
            spec = trial.user_attrs.get(SPACE_ATTR)
            if spec is None:
                raise ValueError(
                    f"trial {trial.number} has no {SPACE_ATTR!r} user attribute, so its space "
                    "is unknown; pass space=... (the space its objective used)"
                )
            space = create(spec["space"], **spec.get("config", {}))
        return space.from_params(trial.params)

    def __str__(self) -> str:
        return f"{self.space}:" + self.get_space().describe(self.genotype)


class SearchSpace(abc.ABC):
    """A conditional architecture search space expressed as Optuna trial parameters.

    Subclasses set :attr:`name`, store their configuration in :attr:`config` (JSON-like
    keyword arguments that recreate the space) and implement :meth:`_walk` and
    :meth:`build_genotype`.
    """

    name: ClassVar[str]

    scale_keys: ClassVar[dict[str, str]] = {}
    """The configuration keys that :meth:`Architecture.scaled` sets for ``"cells"`` and
    ``"channels"``; empty for a space without repeated cells."""

    def __init__(self, **config: Any) -> None:
        self._config = {k: _to_jsonable(v) for k, v in config.items()}

    @property
    def config(self) -> dict[str, Any]:
        """Keyword arguments that recreate this space with :func:`optuna_nas.spaces.create`."""
        return dict(self._config)

    @property
    def spec(self) -> dict[str, Any]:
        """``{"space": name, "config": config}``: what identifies the space in storage."""
        return {"space": self.name, "config": self.config}

    def suggest(self, trial: optuna.trial.BaseTrial) -> Architecture:
        """Samples an architecture by asking ``trial`` for each active decision.

        Only ``trial.suggest_*`` calls are made, so any Optuna sampler drives the search.
        The space spec and the architecture JSON are stored as user attributes, which lets
        :meth:`Architecture.from_trial` and optuna-dashboard show the architecture later.
        """
        self._walk(TrialChooser(trial))
        arch = self.from_params(trial.params)
        trial.set_user_attr(SPACE_ATTR, self.spec)
        trial.set_user_attr(ARCH_ATTR, arch.to_json())
        return arch

    def decode(self, params: Mapping[str, ParamValue]) -> Any:
        """Validates ``params`` and returns the genotype they describe.

        Parameters that the walk does not ask for are ignored, so a trial that also tuned,
        say, a learning rate decodes fine.
        """
        return self._walk(ParamsChooser(params, self.name))

    def from_params(self, params: Mapping[str, ParamValue]) -> Architecture:
        """The :class:`Architecture` for ``params``, keeping only the active ones."""
        chooser = ParamsChooser(params, self.name)
        self._walk(chooser)
        return Architecture(
            space=self.name, config=_freeze(self._config), params=_freeze(chooser.used)
        )

    def sample_params(
        self, rng: np.random.RandomState, fixed: Mapping[str, ParamValue] | None = None
    ) -> dict[str, ParamValue]:
        """The active parameters of a random architecture, drawn without a trial.

        Each decision is uniform over its choices or integer steps, or log-uniform for
        integers with ``log=True``.

        Args:
            rng: The random generator to draw with.
            fixed: Values to keep for the decisions they name, where legal and active.
        """
        chooser = _RandomChooser(rng, fixed or {})
        self._walk(chooser)
        return chooser.used

    def iter_params(
        self, start: Mapping[str, ParamValue] | None = None
    ) -> Iterator[dict[str, ParamValue]]:
        """Every architecture of the space exactly once, as its active parameters.

        Architectures come depth first, in the order of each decision's choices, beginning
        at ``start`` and wrapping around, so a random ``start`` (see :meth:`sample_params`)
        gives a complete enumeration in a random rotation. Only small spaces can be
        enumerated to the end; stop early by leaving the loop.

        Args:
            start: Active parameters of the first architecture; the first in order if
                ``None``. Decisions it lacks or gives illegal values take their first choice.
        """
        chooser = _IndexChooser([], start)
        self._walk(chooser)
        first = chooser.indices
        while True:
            yield chooser.used
            path: list[int] = []
            for depth in reversed(range(len(chooser.indices))):
                if chooser.indices[depth] + 1 < chooser.sizes[depth]:
                    path = [*chooser.indices[:depth], chooser.indices[depth] + 1]
                    break
            chooser = _IndexChooser(path)
            self._walk(chooser)
            if chooser.indices == first:
                return

    @abc.abstractmethod
    def _walk(self, choose: Chooser) -> Any:
        """Asks every active decision of one architecture and returns its genotype."""

    @abc.abstractmethod
    def build_genotype(
        self,
        genotype: Any,
        input_shape: tuple[int, ...],
        num_classes: int,
        *,
        width_multiplier: float = 1.0,
    ) -> torch.nn.Module:
        """Builds the network for a decoded genotype.

        ``width_multiplier`` scales every layer's channels or units with
        :func:`scale_width`. :meth:`Architecture.build` passes it only when it is not 1, so
        a space that cannot scale may leave the keyword out.
        """

    def describe(self, genotype: Any) -> str:
        """A one-line human-readable form of a genotype."""
        return repr(genotype)

    def drawing(self, genotype: Any) -> Drawing:
        """What :func:`~optuna_nas.spaces.draw_architecture` draws for a decoded genotype.

        Each space draws itself; this default is one box holding :meth:`describe`.
        """
        return Drawing(self.name, [box_panel(self.describe(genotype))])

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self._config.items())
        return f"{type(self).__name__}({args})"


def scale_width(width: int, width_multiplier: float) -> int:
    """``width`` channels or units scaled by ``width_multiplier``, rounded, at least 1."""
    return max(1, round(width * width_multiplier))


def _to_jsonable(value: Any) -> Any:
    if isinstance(value, (list, tuple)):
        return [_to_jsonable(v) for v in value]
    if isinstance(value, Mapping):
        return {str(k): _to_jsonable(v) for k, v in value.items()}
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    raise TypeError(
        f"space arguments must be JSON-like (numbers, strings, lists), got {type(value).__name__}"
    )
