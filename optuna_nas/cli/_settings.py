"""The settings of ``optuna-nas search``: as given, else as the resumed study stored them,
else the defaults; and the combinations of them that are refused."""

from __future__ import annotations

import argparse
from typing import Any

from optuna_nas import _keys

# Options that change a trial's value, with their defaults for a new study. A resumed
# study supplies what is not given (see resolve_settings).
DEFAULTS: dict[str, Any] = {
    "space": "chain",
    "dataset": "mnist1d",
    "sampler": "gp",
    "pruner": "rank",
    "epochs": 20,
    "batch_size": 128,
    "lr": 3e-3,
    "seed": 0,
    "inherit_weights": False,
    "inherit_lr_scale": None,
    "no_partial_inherit": False,
    "no_checkpoints": False,
    "estimate_rung": None,
}


def _stored_settings(attrs: dict[str, Any]) -> dict[str, Any]:
    """The CLI settings a stored study implies, under their option names."""
    spec = attrs.get(_keys.STUDY_SPACE) or {}
    dataset = attrs.get(_keys.STUDY_DATASET) or {}
    training = attrs.get(_keys.STUDY_TRAINING) or {}
    objective = attrs.get(_keys.STUDY_OBJECTIVE) or {}
    sampler = attrs.get(_keys.STUDY_SAMPLER) or {}
    pruner = attrs.get(_keys.STUDY_PRUNER) or {}
    stored: dict[str, Any] = {
        "space": spec.get("space"),
        "space_config": spec.get("config"),
        "dataset": dataset.get("name"),
        "sampler": sampler.get("name"),
        "sampler_kwargs": sampler.get("kwargs"),
        "pruner": pruner.get("name"),
        "pruner_kwargs": pruner.get("kwargs"),
        "epochs": training.get("epochs"),
        "batch_size": training.get("batch_size"),
        "lr": training.get("lr"),
        "seed": objective.get("seed", sampler.get("seed")),
    }
    if objective:
        stored["inherit_weights"] = objective.get("inherit_weights")
        stored["inherit_lr_scale"] = objective.get("inherit_lr_scale")
        stored["no_partial_inherit"] = not objective.get("inherit_partial", True)
        stored["no_checkpoints"] = not objective.get("save_checkpoints", True)
        stored["estimate_rung"] = objective.get("estimate_rung")
    return {k: v for k, v in stored.items() if v is not None}


def resolve_settings(args: argparse.Namespace, attrs: dict[str, Any] | None) -> dict[str, Any]:
    """Each setting: as given, else as the resumed study stored it, else the default."""
    stored = {} if attrs is None else _stored_settings(attrs)
    settings: dict[str, Any] = {}
    for name, default in DEFAULTS.items():
        given = getattr(args, name)
        settings[name] = given if given is not None else stored.get(name, default)
    settings["space_args"] = args.space_arg
    same_space = settings["space"] == stored.get("space")
    settings["space_config"] = (
        stored.get("space_config") if args.space_arg is None and same_space else None
    )
    # A name given without arguments drops the stored arguments of another name.
    for kind in ("sampler", "pruner"):
        items = getattr(args, f"{kind}_arg")
        if items:
            settings[f"{kind}_args"] = items
        elif getattr(args, kind) in (None, stored.get(kind)):
            settings[f"{kind}_kwargs"] = stored.get(f"{kind}_kwargs", {})
    return settings


def check_combinations(settings: dict[str, Any]) -> None:
    """Refuses flags that would have no effect, and combinations that cannot work."""
    # --inherit-weights with --no-checkpoints: ObjectiveConfig refuses it.
    if not settings["inherit_weights"]:
        for option, value in (
            ("--inherit-lr-scale", settings["inherit_lr_scale"]),
            ("--no-partial-inherit", settings["no_partial_inherit"]),
        ):
            if value:
                raise ValueError(
                    f"{option} applies to children that inherit weights, and has no effect "
                    "without --inherit-weights; add --inherit-weights or drop it"
                )
    if settings["estimate_rung"] is not None and settings["pruner"] != "fidelity":
        raise ValueError(
            f"--estimate-rung reports a proxy at step 0 for the low-fidelity pruner, and "
            f"--pruner {settings['pruner']} would read it as an epoch; add --pruner fidelity "
            "or drop --estimate-rung"
        )
    if settings["pruner"] in ("lce", "fidelity") and settings["epochs"] < 3:
        raise ValueError(
            f"--pruner {settings['pruner']} decides from a learning curve of several epochs, "
            f"and --epochs {settings['epochs']} gives too few; use --epochs 3 or more, or "
            "--pruner rank, median or none"
        )


def existing_attrs(storage: Any, study_name: str) -> dict[str, Any] | None:
    """The user attributes of the stored study of that name, or ``None`` if there is none."""
    try:
        study_id = storage.get_study_id_from_name(study_name)
    except KeyError:
        return None
    return dict(storage.get_study_user_attrs(study_id))
