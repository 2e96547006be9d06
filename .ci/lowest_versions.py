"""Prints ``name==lowest`` for every install requirement in setup.cfg with a lower bound."""

from __future__ import annotations

import configparser
import re
import sys

config = configparser.ConfigParser()
config.read(sys.argv[1])
specs = []
for line in config["options"]["install_requires"].strip().splitlines():
    match = re.fullmatch(r"\s*([A-Za-z0-9_.\-]+)\s*>=\s*([0-9][^,;\s]*)\s*", line)
    if match is None:
        raise SystemExit(f"install requirement {line!r} has no lower bound (NAME>=VERSION)")
    name, version = match.groups()
    if name in ("torch", "torchvision"):
        continue  # borrowed from .venv: one build of PyTorch lies on these machines
    specs.append(f"{name}=={version}")
print(" ".join(specs))
