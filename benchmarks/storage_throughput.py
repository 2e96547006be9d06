"""Trials per minute and sampler latency with 1 to 8 worker processes on one PostgreSQL study.

For every sampler and worker count, a new study is created on the database and ``W``
processes (forked from a forkserver that imported optuna-nas once) load it, wait for each
other, and together run ``--trials`` trials of the NAS-Bench-201 table objective
(:class:`optuna_nas.benchmarks.NASBench201`, CIFAR-10, protocol A: a lookup, no training),
``--trials / W`` each. So the numbers measure what a shared study costs beyond the
objective: storage round trips, lock waits and the sampler's own work, which for our
samplers includes reading the study's trials to rebuild their population or policy.

Reported per run:

* trials per minute: all trials over the wall time from the common start to the last end;
* sampler latency: per trial, the seconds spent inside the sampler (``before_trial``, the
  ``sample_*`` calls and ``after_trial``, storage reads they make included), median and 90th
  percentile over all trials of the run;
* CPU seconds per trial: the workers' process CPU time over the trials, which other load
  on a shared machine inflates far less than wall time;
* lost and duplicated trials: after the run, the study must hold exactly ``--trials``
  COMPLETE trials numbered 0..N-1, and the numbers each process ran must partition them.

Samplers: ours (``random``, ``evolution``, ``reinforce``, ``gp``, default arguments, the
space passed to those that take it) and Optuna's (``optuna-random``, ``tpe``), in the
same run. Each study is deleted afterwards.

Usage::

    OPTUNA_NAS_NB201_DIR=/work/shared/benchmarks/nb201 \\
        python benchmarks/storage_throughput.py \\
        --storage postgresql://postgres@127.0.0.1:5432/test \\
        --output benchmarks/results/storage_throughput.md
"""

from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import argparse  # noqa: E402
import datetime  # noqa: E402
import json  # noqa: E402
import multiprocessing  # noqa: E402
import platform  # noqa: E402
import shlex  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
import uuid  # noqa: E402
from collections import Counter, defaultdict  # noqa: E402
from collections.abc import Sequence  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

import numpy as np  # noqa: E402
import optuna  # noqa: E402

from optuna_nas import mask_url, open_storage  # noqa: E402

OURS = ("random", "evolution", "reinforce", "gp")
PEERS = ("optuna-random", "tpe")
JOIN_TIMEOUT_S = 900


class TimedSampler(optuna.samplers.BaseSampler):
    """Forwards every call to ``inner`` and adds the seconds it took to the trial's total."""

    def __init__(self, inner: optuna.samplers.BaseSampler) -> None:
        self.inner = inner
        self.seconds: defaultdict[int, float] = defaultdict(float)
        self.cpu_seconds: defaultdict[int, float] = defaultdict(float)

    def _timed(self, trial: optuna.trial.FrozenTrial, call: Any, *args: Any) -> Any:
        start, cpu = time.perf_counter(), time.process_time()
        try:
            return call(*args)
        finally:
            self.seconds[trial.number] += time.perf_counter() - start
            self.cpu_seconds[trial.number] += time.process_time() - cpu

    def infer_relative_search_space(self, study: Any, trial: Any) -> Any:
        return self._timed(trial, self.inner.infer_relative_search_space, study, trial)

    def sample_relative(self, study: Any, trial: Any, search_space: Any) -> Any:
        return self._timed(trial, self.inner.sample_relative, study, trial, search_space)

    def sample_independent(self, study: Any, trial: Any, name: str, dist: Any) -> Any:
        return self._timed(trial, self.inner.sample_independent, study, trial, name, dist)

    def before_trial(self, study: Any, trial: Any) -> None:
        self._timed(trial, self.inner.before_trial, study, trial)

    def after_trial(self, study: Any, trial: Any, state: Any, values: Any) -> None:
        self._timed(trial, self.inner.after_trial, study, trial, state, values)

    def reseed_rng(self) -> None:
        self.inner.reseed_rng()


def make_sampler(name: str, seed: int) -> optuna.samplers.BaseSampler:
    from optuna_nas import samplers, spaces

    if name == "optuna-random":
        return optuna.samplers.RandomSampler(seed=seed)
    return samplers.create(name, seed=seed, space=spaces.create("nb201"))


def worker(job: dict[str, Any]) -> None:
    """One worker process: loads the study, waits for the others, runs its trials."""
    import torch

    from optuna_nas.benchmarks import NASBench201

    torch.set_num_threads(1)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    objective = NASBench201("cifar10", protocol="A")
    sampler = TimedSampler(make_sampler(job["sampler"], job["seed"]))
    study = optuna.load_study(
        study_name=job["study_name"], storage=open_storage(job["url"]), sampler=sampler
    )
    ran: list[int] = []

    def counted(trial: optuna.Trial) -> float:
        ran.append(trial.number)
        return objective(trial)

    job["barrier"].wait()
    start, cpu = time.time(), time.process_time()
    study.optimize(counted, n_trials=job["n_trials"])
    report = {
        "start": start,
        "end": time.time(),
        "cpu_s": time.process_time() - cpu,
        "numbers": ran,
        "sampler_s": [sampler.seconds[n] for n in ran],
        "sampler_cpu_s": [sampler.cpu_seconds[n] for n in ran],
    }
    Path(job["report"]).write_text(json.dumps(report))


def run_one(
    context: Any, url: str, sampler: str, n_workers: int, n_trials: int, folder: Path
) -> dict[str, Any]:
    """Runs ``n_trials`` trials of a new study with ``n_workers`` processes; returns a row."""
    name = f"optuna-nas-bench-{sampler}-{n_workers}w-{uuid.uuid4().hex[:8]}"
    storage = open_storage(url)
    optuna.create_study(storage=storage, study_name=name, direction="maximize")
    barrier = context.Barrier(n_workers)
    processes = []
    for index in range(n_workers):
        job = {
            "url": url,
            "study_name": name,
            "sampler": sampler,
            "seed": index,
            "n_trials": n_trials // n_workers,
            "barrier": barrier,
            "report": str(folder / f"{name}-{index}.json"),
        }
        process = context.Process(target=worker, args=(job,), name=f"{name}-{index}")
        process.start()
        processes.append(process)
    for process in processes:
        process.join(JOIN_TIMEOUT_S)
        if process.is_alive():
            process.kill()
            process.join()
    crashed = [p.name for p in processes if p.exitcode != 0]
    if crashed:
        optuna.delete_study(study_name=name, storage=storage)
        raise RuntimeError(f"workers {crashed} failed; see their output above")
    try:
        reports = [json.loads((folder / f"{name}-{i}.json").read_text()) for i in range(n_workers)]
        trials = optuna.load_study(study_name=name, storage=storage).get_trials(deepcopy=False)
    finally:
        optuna.delete_study(study_name=name, storage=storage)

    expected = (n_trials // n_workers) * n_workers
    complete = {t.number for t in trials if t.state == optuna.trial.TrialState.COMPLETE}
    lost = len(set(range(expected)) - complete)
    # A number held twice, run by two processes, or a trial beyond those asked for.
    numbers = Counter(t.number for t in trials)
    ran = Counter(n for report in reports for n in report["numbers"])
    duplicated = sum(c - 1 for c in numbers.values()) + sum(c - 1 for c in ran.values())
    duplicated += max(0, len(trials) - expected)
    wall = max(r["end"] for r in reports) - min(r["start"] for r in reports)
    latency = np.array([s for r in reports for s in r["sampler_s"]])
    latency_cpu = np.array([s for r in reports for s in r["sampler_cpu_s"]])
    return {
        "sampler": sampler,
        "workers": n_workers,
        "trials": len(trials),
        "wall_s": wall,
        "trials_per_min": 60.0 * len(trials) / wall,
        "sampler_median_ms": 1e3 * float(np.median(latency)),
        "sampler_p90_ms": 1e3 * float(np.percentile(latency, 90)),
        "sampler_cpu_median_ms": 1e3 * float(np.median(latency_cpu)),
        "cpu_s_per_trial": sum(r["cpu_s"] for r in reports) / max(1, len(trials)),
        "lost": lost,
        "duplicated": duplicated,
    }


def summarize(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One row per sampler and worker count: medians over repeats, lost and duplicated summed."""
    groups: defaultdict[tuple[str, int], list[dict[str, Any]]] = defaultdict(list)
    for row in rows:
        groups[row["sampler"], row["workers"]].append(row)
    summary = []
    for (sampler, workers), runs in groups.items():
        entry: dict[str, Any] = {"sampler": sampler, "workers": workers, "runs": len(runs)}
        for key in (
            "trials_per_min",
            "sampler_median_ms",
            "sampler_p90_ms",
            "sampler_cpu_median_ms",
            "cpu_s_per_trial",
            "load_before",
        ):
            entry[key] = float(np.median([r[key] for r in runs]))
        entry["trials"] = sum(r["trials"] for r in runs)
        entry["lost"] = sum(r["lost"] for r in runs)
        entry["duplicated"] = sum(r["duplicated"] for r in runs)
        summary.append(entry)
    return summary


def markdown(summary: list[dict[str, Any]], meta: dict[str, Any]) -> str:
    base = {r["sampler"]: r["trials_per_min"] for r in summary if r["workers"] == 1}
    tpe = {r["workers"]: r["trials_per_min"] for r in summary if r["sampler"] == "tpe"}
    lines = [
        f"# Storage throughput ({meta['date']})",
        "",
        f"Command: `{meta['command']}`",
        "",
        f"Storage: {meta['storage']}; {meta['trials']} trials per run, {meta['repeats']} "
        f"runs per row (medians), NAS-Bench-201 CIFAR-10 table objective; machine: "
        f"{meta['machine']}.",
        "",
        "| sampler | workers | trials/min | vs 1 worker | vs TPE | sampler median ms | "
        "sampler p90 ms | sampler CPU ms | CPU s/trial | trials | lost | duplicated | load |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: "
        "| ---: |",
    ]
    for r in summary:
        vs_one = r["trials_per_min"] / base[r["sampler"]] if r["sampler"] in base else float("nan")
        vs_tpe = r["trials_per_min"] / tpe[r["workers"]] if r["workers"] in tpe else float("nan")
        lines.append(
            f"| {r['sampler']} | {r['workers']} | {r['trials_per_min']:.0f} | {vs_one:.2f}x | "
            f"{vs_tpe:.2f}x | {r['sampler_median_ms']:.1f} | {r['sampler_p90_ms']:.1f} | "
            f"{r['sampler_cpu_median_ms']:.1f} | {r['cpu_s_per_trial']:.3f} | {r['trials']} | "
            f"{r['lost']} | {r['duplicated']} | {r['load_before']:.1f} |"
        )
    lines += [
        "",
        "sampler ms: wall time inside the sampler per trial (median, 90th percentile); sampler "
        "CPU ms: the CPU time of the same calls (median), which other load inflates far "
        "less. CPU s/trial: the workers' CPU time over all trials. load: the machine's "
        "1-minute load average when a run started (2 cores; other work shares them). "
        "trials, lost, duplicated: summed over the runs.",
    ]
    return "\n".join(lines) + "\n"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--storage", default="postgresql://postgres@127.0.0.1:5432/test")
    parser.add_argument("--workers", default="1,2,4,8", help="comma-separated worker counts")
    parser.add_argument("--samplers", default=",".join(OURS + PEERS))
    parser.add_argument("--trials", type=int, default=96, help="trials per run (all workers)")
    parser.add_argument("--repeats", type=int, default=1, help="runs of the whole grid")
    parser.add_argument("--output", type=Path, default=None, help="Markdown table to write")
    args = parser.parse_args(argv)
    counts = [int(w) for w in args.workers.split(",")]
    names = args.samplers.split(",")
    for name in names:
        make_sampler(name, 0)  # an unknown name fails here, before any run

    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload(["optuna_nas", "optuna_nas.benchmarks", "botorch"])
    rows = []
    with tempfile.TemporaryDirectory() as folder:
        # Worker count outermost: the samplers compared at one count run close in time, so
        # the shared machine's other load affects them alike.
        for repeat in range(args.repeats):
            for count in counts:
                for name in names:
                    load = os.getloadavg()[0]
                    folder_path = Path(folder)
                    row = run_one(context, args.storage, name, count, args.trials, folder_path)
                    row.update(load_before=load, repeat=repeat)
                    rows.append(row)
                    print(json.dumps(row), flush=True)
    summary = summarize(rows)
    summary.sort(key=lambda r: (names.index(r["sampler"]), r["workers"]))
    meta = {
        "date": datetime.date.today().isoformat(),
        "command": shlex.join(["python", *sys.argv]),
        "storage": mask_url(args.storage),
        "trials": args.trials,
        "repeats": args.repeats,
        "machine": f"{platform.machine()}, {os.cpu_count()} CPU cores (shared), "
        f"Python {platform.python_version()}, Optuna {optuna.__version__}",
    }
    if args.output is not None:
        args.output.write_text(markdown(summary, meta))
        raw = {"meta": meta, "summary": summary, "rows": rows}
        args.output.with_suffix(".json").write_text(json.dumps(raw, indent=1))
    print(markdown(summary, meta))
    bad = [r for r in rows if r["lost"] or r["duplicated"]]
    return 1 if bad else 0


if __name__ == "__main__":
    raise SystemExit(main())
