"""Ships the model files inside the package: ontology/, shapes/, mappings/ and queries/ sit at the top
of the repository, where data architects edit them, and a wheel carries a copy of them as
``opportunity_kg/model/`` (see ``opportunity_kg.paths``). Everything else is in pyproject.toml."""

import shutil
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

#: the folders of data files the package reads
MODEL = ("ontology", "shapes", "mappings", "queries")


class BuildWithModel(build_py):
    def run(self):
        super().run()
        root = Path(__file__).resolve().parent
        target = Path(self.build_lib) / "opportunity_kg" / "model"
        for name in MODEL:
            if (root / name).is_dir():
                shutil.copytree(root / name, target / name, dirs_exist_ok=True,
                                ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))


setup(cmdclass={"build_py": BuildWithModel})
