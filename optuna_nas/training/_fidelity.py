"""What to run at one rung of a multi-fidelity search, and ladders of such rungs."""

from __future__ import annotations

import itertools
import math
import numbers
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from torch import nn

    from optuna_nas.data import Dataset
    from optuna_nas.spaces import Architecture


@dataclass(frozen=True)
class Fidelity:
    """How cheaply to evaluate an architecture: one rung of a multi-fidelity search.

    Every field left ``None`` means full fidelity. :func:`optuna_nas.training.fit`
    applies a fidelity given as ``fit(..., fidelity=fidelity)``:

    * ``epochs`` replaces fit's ``epochs``;
    * ``data_fraction`` and ``resolution`` go to :meth:`optuna_nas.data.Dataset.with_fidelity`
      (a class-stratified share of the training split drawn with fit's ``seed``; images
      resized in every split, so scores at all rungs are measured on the same examples);
    * ``width_multiplier`` scales the channels (or units) of every layer when the network
      is built, by :meth:`optuna_nas.Architecture.build`. ``fit`` applies it when it is
      given the :class:`~optuna_nas.Architecture` instead of a module.

    **Restart or continue.** ``fit(architecture, ..., fidelity=f)`` builds and trains a
    fresh network, so each rung restarts: its value is exactly "the accuracy after training
    at fidelity ``f``", comparable between trials whatever they ran before, which is what
    :class:`optuna_nas.pruners.LowFidelityPruner` correlates with the final rung. Passing
    the same module to the next rung instead continues from its weights for another
    ``epochs`` epochs, with a fresh learning-rate schedule; that suits epochs and
    ``data_fraction`` rungs (cheaper: the ladder's epochs add up) but cannot change the
    width, and the module must accept the rung's resolution. Restarting costs at most
    ``1 / (eta - 1)`` more than the top rung alone on a ladder of epochs.

    Example:
        .. code-block:: python

            import optuna
            from optuna_nas import data, spaces, training
            from optuna_nas.pruners import LowFidelityPruner
            from optuna_nas.training import Fidelity

            dataset = data.load("digits")
            space = spaces.create("chain", max_layers=2, filters=[8, 16])
            ladder = Fidelity.ladder(epochs=(1, 6), data_fraction=(0.25, 1.0))

            def objective(trial):
                arch = space.suggest(trial)
                for rung, fidelity in enumerate(ladder):
                    accuracy = training.fit(arch, dataset, fidelity=fidelity).valid_accuracy
                    trial.report(accuracy, rung)
                    if trial.should_prune():
                        raise optuna.TrialPruned()
                return accuracy

            pruner = LowFidelityPruner(rung_steps=range(len(ladder)))
            study = optuna.create_study(direction="maximize", pruner=pruner)
            study.optimize(objective, n_trials=12)

    Attributes:
        epochs: Training epochs, at least 1.
        data_fraction: Share of the training split, in ``(0, 1]``.
        resolution: Side length of the resized images, at least 1.
        width_multiplier: Factor on every layer's channels or units, greater than 0.
    """

    epochs: int | None = None
    data_fraction: float | None = None
    resolution: int | None = None
    width_multiplier: float | None = None

    def __post_init__(self) -> None:
        if self.epochs is not None and (not _is_int(self.epochs) or self.epochs < 1):
            raise ValueError(f"Fidelity epochs must be an integer >= 1, got {self.epochs!r}")
        if self.data_fraction is not None and not (
            _is_real(self.data_fraction) and 0.0 < self.data_fraction <= 1.0
        ):
            raise ValueError(
                f"Fidelity data_fraction must lie in (0, 1], got {self.data_fraction!r}"
            )
        if self.resolution is not None and (not _is_int(self.resolution) or self.resolution < 1):
            raise ValueError(
                f"Fidelity resolution must be an integer >= 1, got {self.resolution!r}"
            )
        if self.width_multiplier is not None and not (
            _is_real(self.width_multiplier)
            and math.isfinite(self.width_multiplier)
            and self.width_multiplier > 0.0
        ):
            raise ValueError(
                f"Fidelity width_multiplier must be a number > 0, got {self.width_multiplier!r}"
            )

    @classmethod
    def ladder(
        cls,
        *,
        epochs: tuple[int, int] | None = None,
        data_fraction: tuple[float, float] | None = None,
        resolution: tuple[int, int] | None = None,
        width_multiplier: tuple[float, float] | None = None,
        eta: float = 3.0,
        n_rungs: int | None = None,
    ) -> list[Fidelity]:
        """Rungs of increasing fidelity, from ``(low, high)`` ranges of the fields to vary.

        Each given field grows geometrically from ``low`` at the first rung to ``high`` at
        the last; fields left ``None`` stay at full fidelity. ``epochs`` and ``resolution``
        are rounded to integers. Without ``n_rungs`` the rungs are ``eta`` apart in the
        field with the widest range: ``epochs=(1, 27)`` gives epochs 1, 3, 9 and 27.

        Args:
            epochs: ``(low, high)`` epochs.
            data_fraction: ``(low, high)`` shares of the training split.
            resolution: ``(low, high)`` image side lengths.
            width_multiplier: ``(low, high)`` width factors.
            eta: Ratio between neighbouring rungs when ``n_rungs`` is not given, > 1.
            n_rungs: The number of rungs, at least 2.

        Returns:
            The rungs, lowest fidelity first. Report rung ``k`` at step ``k`` and prune
            with ``LowFidelityPruner(rung_steps=range(len(ladder)))``.

        Raises:
            ValueError: If no range is given, a range is not ``low < high`` within the
                field's limits, or rounding makes two neighbouring rungs equal.
        """
        given: dict[str, tuple[float, float] | None] = {
            "epochs": epochs,
            "data_fraction": data_fraction,
            "resolution": resolution,
            "width_multiplier": width_multiplier,
        }
        ranges: dict[str, tuple[float, float]] = {}
        for name, bounds in given.items():
            if bounds is None:
                continue
            if (
                not isinstance(bounds, (tuple, list))
                or len(bounds) != 2
                or not all(_is_real(b) for b in bounds)
            ):
                raise ValueError(f"{name} must be a (low, high) pair of numbers, got {bounds!r}")
            ranges[name] = (bounds[0], bounds[1])
            if not 0 < bounds[0] < bounds[1]:
                raise ValueError(f"{name} must satisfy 0 < low < high, got {bounds!r}")
        if not ranges:
            raise ValueError(
                "Fidelity.ladder needs at least one (low, high) range, e.g. epochs=(1, 27)"
            )
        if n_rungs is None:
            if not _is_real(eta) or not eta > 1.0:
                raise ValueError(f"eta must be a number > 1, got {eta!r}")
            widest = max(math.log(r[1] / r[0]) for r in ranges.values())
            n_rungs = 1 + math.floor(widest / math.log(eta) + 1e-9)
        if not _is_int(n_rungs) or n_rungs < 2:
            raise ValueError(
                f"a ladder needs at least 2 rungs, got {n_rungs!r}; widen a range or lower eta"
            )

        rungs = []
        for k in range(n_rungs):
            below_top = (n_rungs - 1 - k) / (n_rungs - 1)  # 0 at the last rung: exactly high
            fields: dict[str, float] = {}
            for name, (low, high) in ranges.items():
                value = float(high * (low / high) ** below_top)
                fields[name] = max(1, round(value)) if name in ("epochs", "resolution") else value
            rungs.append(cls(**fields))  # type: ignore[arg-type]
        for lower, upper in itertools.pairwise(rungs):
            if lower == upper:
                raise ValueError(
                    f"rounding gives two equal rungs ({lower}); use fewer rungs or a wider range"
                )
        return rungs


def apply_fidelity(
    model: nn.Module | Architecture,
    data: Dataset,
    fidelity: Fidelity | None,
    *,
    seed: int,
) -> tuple[nn.Module, Dataset]:
    """The network and data that :func:`~optuna_nas.training.fit` trains at ``fidelity``.

    An :class:`~optuna_nas.Architecture` is built after ``torch.manual_seed(seed)``, at
    the fidelity's width and for the fidelity's input shape, so every rung of a trial
    starts from the same initialisation; a module is used as it is.

    Raises:
        ValueError: If a width multiplier comes with a module already built.
    """
    if fidelity is not None and (
        fidelity.data_fraction is not None or fidelity.resolution is not None
    ):
        data = data.with_fidelity(
            data_fraction=1.0 if fidelity.data_fraction is None else fidelity.data_fraction,
            resolution=fidelity.resolution,
            seed=seed,
        )
    width = None if fidelity is None else fidelity.width_multiplier
    import torch
    from torch import nn

    if isinstance(model, nn.Module):
        if width is not None and width != 1.0:
            raise ValueError(
                f"a width_multiplier ({width}) is applied when the network is built, but fit "
                "got a module that is built already; pass the Architecture instead "
                "(fit(arch, data, fidelity=...)), or build it with "
                "arch.build(..., width_multiplier=...) and drop width_multiplier from the "
                "Fidelity"
            )
        return model, data
    torch.manual_seed(seed)
    return model.build(
        data.input_shape, data.num_classes, width_multiplier=1.0 if width is None else width
    ), data


def _is_int(value: object) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def _is_real(value: object) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


__all__ = ["Fidelity", "apply_fidelity"]
