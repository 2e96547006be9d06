"""``python -m optuna_nas.benchmarks.convert_nats SOURCE OUT_DIR``: build the NAS-Bench-201
tables from the NATS-Bench topology-space release (see
:func:`~optuna_nas.benchmarks.convert_nats_tss`)."""

from optuna_nas.benchmarks._nats import main

if __name__ == "__main__":
    raise SystemExit(main())
