"""``python -m optuna_nas`` runs the ``optuna-nas`` command line."""

import sys

from optuna_nas.cli import main

sys.exit(main())
