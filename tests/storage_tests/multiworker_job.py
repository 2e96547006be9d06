"""One worker process of the multi-worker storage tests.

The tests run this file with :func:`runpy.run_path` in a process of their own, passing the
global ``JOB`` (a dict). It opens the storage with :func:`optuna_nas.open_storage`, loads
the shared study with one of our samplers, runs ``n_trials`` trials of a cheap synthetic
objective over the NAS-Bench-201 cell space, and writes a JSON report: the trial numbers
this process ran and, for REINFORCE, the policy it holds once every worker is done.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import optuna
import torch

from optuna_nas import open_storage, samplers, spaces

WORKER_ATTR = "worker"
"""Trial user attribute: index of the worker process that ran the trial."""


def run(job: dict[str, Any]) -> None:
    torch.set_num_threads(1)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    space = spaces.create("nb201")
    sampler = samplers.create(job["sampler"], seed=job["seed"], space=space, **job["kwargs"])
    storage = open_storage(job["url"])
    study = optuna.load_study(study_name=job["study_name"], storage=storage, sampler=sampler)
    ran: list[int] = []

    def objective(trial: optuna.Trial) -> float:
        ran.append(trial.number)
        trial.set_user_attr(WORKER_ATTR, job["worker"])
        ops = space.decode(space.suggest(trial).param_dict)
        time.sleep(job["delay"])  # keeps the workers' trials interleaved
        return float(ops.count("nor_conv_3x3") - ops.count("none"))

    if job["start"] is not None:
        job["start"].wait()
    study.optimize(objective, n_trials=job["n_trials"])
    if job["done"] is not None:
        job["done"].wait()  # the policy below then reflects every worker's trials
    logits = None
    if isinstance(sampler, samplers.REINFORCESampler):
        logits = {name: row.tolist() for name, row in sampler.policy_logits(study).items()}
    report = {"worker": job["worker"], "numbers": ran, "logits": logits}
    Path(job["report"]).write_text(json.dumps(report))


run(globals()["JOB"])
