"""opportunity-kg: CRM exports to one RDF knowledge graph, queried in SPARQL.

The public API is small; the CLI (``okg``) and the web layer call the same
functions:

- :func:`opportunity_kg.samples.sample.write_sample` writes a sample Salesforce export;
- :func:`opportunity_kg.mapping.rml.run_mapping` runs an RML mapping to quads;
- :func:`opportunity_kg.ingest.ingest` maps, validates and loads an export;
- :func:`opportunity_kg.store.open_store` and :func:`opportunity_kg.store.run_query`;
- :func:`opportunity_kg.analytics.queries.run_canned` runs a canned query;
- :func:`opportunity_kg.analytics.forecast.load_book`, :func:`opportunity_kg.analytics.forecast.forecast` and
  :func:`opportunity_kg.analytics.forecast.backtest` forecast a period and replay the history;
- :func:`opportunity_kg.store.snapshots.list_snapshots` and :func:`opportunity_kg.store.snapshots.write_snapshot`
  list the snapshots and rebuild a past one's facts (snapshots are kept as changes);
- :func:`opportunity_kg.analytics.match.match_store` links accounts to legal entities and across systems;
- :func:`opportunity_kg.web.create_app` builds the Flask application.
"""

__version__ = "0.1.0"
