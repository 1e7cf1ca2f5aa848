"""Packages are found, not listed: each top-level folder of the repository installs under the one import name
``nac_hash`` (``training/`` as ``nac_hash.training`` and so on), subpackages and data folders included.

Everything else about the distribution (name, version, dependencies, data files) is in ``pyproject.toml``.
"""

from setuptools import find_namespace_packages, setup

FOLDERS = {"nac_hash": "nac_hash", "nac_hash.training": "training", "nac_hash.index_data": "index_data",
           "nac_hash.service": "service"}


def packages() -> list[str]:
    """Every folder under each top-level folder, as a package of its import name (data folders included)."""
    found = []
    for name, folder in FOLDERS.items():
        found.append(name)
        found += [f"{name}.{sub}" for sub in find_namespace_packages(folder, exclude=["*__pycache__*"])
                  if f"{name}.{sub}" not in FOLDERS]
    return found


setup(packages=packages(), package_dir={name: folder for name, folder in FOLDERS.items() if name != folder})
