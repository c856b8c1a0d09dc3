"""Where the project's data files live: ontology, shapes, mappings and canned queries.

They sit at the top of the repository (data architects edit them there); a
checkout or an editable install reads them there, and an installed wheel reads
the copy it ships inside the package (``opportunity_kg/model/``, put there by
setup.py). ``OKG_HOME`` points elsewhere, for a deployment that keeps its own
copies.
"""

import os
from pathlib import Path

#: a checkout (or an editable install): the files at the top of the repository
_REPOSITORY = Path(__file__).resolve().parents[2]
#: an installed wheel: the copy it ships inside the package (setup.py puts it there)
_PACKAGED = Path(__file__).resolve().parent / "model"
HOME = Path(os.environ.get("OKG_HOME") or (_REPOSITORY if (_REPOSITORY / "ontology").is_dir() else _PACKAGED))
ONTOLOGY_DIR = HOME / "ontology"
SHAPES_DIR = HOME / "shapes"
MAPPINGS_DIR = HOME / "mappings"
QUERIES_DIR = HOME / "queries"
