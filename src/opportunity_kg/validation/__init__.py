"""Stage 3: SHACL validation (pyshacl, and the core constraints compiled to SPARQL)."""
