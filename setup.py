"""Packages are discovered from the tree, never listed by hand.

``conf/`` (the Hydra config groups) is installed as the package ``hpo_cli.conf`` so that Hydra
reads it as ``pkg://hpo_cli.conf``; every folder under it becomes a subpackage.
"""

from setuptools import find_namespace_packages, find_packages, setup

CONFIG_GROUPS = find_namespace_packages("conf", exclude=["*__pycache__*"])

setup(
    packages=[
        *find_packages(include=["hpo_cli", "hpo_cli.*"], exclude=["hpo_cli.conf", "hpo_cli.conf.*"]),
        "hpo_cli.conf",
        *(f"hpo_cli.conf.{group}" for group in CONFIG_GROUPS),
    ],
    package_dir={"hpo_cli.conf": "conf"},
)
