"""Where the project's data files live: ontology, shapes, mappings and canned queries.

They sit at the top of the repository (data architects edit them there) and
are found from the installed package. ``OKG_HOME`` points elsewhere, for a
deployment that keeps its own copies.
"""

import os
from pathlib import Path

HOME = Path(os.environ.get("OKG_HOME") or Path(__file__).resolve().parents[2])
ONTOLOGY_DIR = HOME / "ontology"
SHAPES_DIR = HOME / "shapes"
MAPPINGS_DIR = HOME / "mappings"
QUERIES_DIR = HOME / "queries"
