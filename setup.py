"""Packages are discovered from the tree, never listed by hand.

``conf/`` (the Hydra config groups) is installed as the package ``hpo_cli.conf`` so that Hydra
reads it as ``pkg://hpo_cli.conf``; every folder under it becomes a subpackage.
``hydra_plugins/hpo_sweeper`` is the Hydra sweeper plugin (``hydra_plugins`` itself has no
``__init__.py``: Hydra finds plugins of every installed package in that namespace).
"""

from setuptools import find_namespace_packages, find_packages, setup

CONFIG_GROUPS = find_namespace_packages("conf", exclude=["*__pycache__*"])

setup(
    packages=[
        *find_packages(include=["hpo_cli", "hpo_cli.*"], exclude=["hpo_cli.conf", "hpo_cli.conf.*"]),
        "hpo_cli.conf",
        *(f"hpo_cli.conf.{group}" for group in CONFIG_GROUPS),
        # the Hydra sweeper plugin (hydra/sweeper=hpo): `hydra_plugins` is a namespace package
        *find_namespace_packages(include=["hydra_plugins", "hydra_plugins.*"]),
    ],
    package_dir={"hpo_cli.conf": "conf"},
)
