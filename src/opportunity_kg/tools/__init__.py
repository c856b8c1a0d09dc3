"""The tools for the people who extend the model: lint, scaffold, the diagram, the ontology's documentation, canonical Turtle."""
