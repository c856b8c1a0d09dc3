"""The HTTP layer: a SPARQL 1.1 query endpoint and the canned-query API, over one store.

A Flask app (:func:`create_app`) of three blueprints over one query runner
(:class:`~opportunity_kg.web.runner.QueryRunner`): :mod:`.protocol` (the SPARQL side), :mod:`.api`
(the tables BI tools pull) and :mod:`.pages` (what a person opens); :mod:`.formats` negotiates and
writes the answers, :mod:`.slots` shares the query slots out among clients.

Routes:

- ``/sparql``: SPARQL 1.1 Protocol queries by GET, POST form or POST direct;
  results as JSON, XML, CSV or TSV by ``Accept`` (or ``format=``). Read-only.
- ``/api/queries``: the canned queries with their typed parameters (JSON).
- ``/api/queries/<name>`` (``.csv`` or ``.json`` suffix, or ``Accept``): runs
  a canned query with parameters from the query string.
- ``/ontology``: the ontology, as pyLODE HTML for a browser and as Turtle,
  N-Triples, RDF/XML or JSON-LD for an RDF client (``Accept`` or ``format=``);
  ``/ontology/<module>`` is one module, ``/ontology/<version>`` the version IRI.
- ``/``: a small page that lists the above and runs a query.

Every error is answered with the one JSON error shape of
:class:`opportunity_kg.errors.OkgError`.
"""

from .app import create_app

__all__ = ["create_app"]
