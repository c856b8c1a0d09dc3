"""The namespaces the code names terms in: the project's ontology and the standards it builds on.

One place for them, so a module never spells a namespace of its own."""

import pyoxigraph as ox

OKG = "https://w3id.org/opportunity-kg/ontology#"
OKGM = "https://w3id.org/opportunity-kg/mapping#"
OKGFN = "https://w3id.org/opportunity-kg/function#"
PROV = "http://www.w3.org/ns/prov#"
XSD = "http://www.w3.org/2001/XMLSchema#"
RDF = "http://www.w3.org/1999/02/22-rdf-syntax-ns#"
RDFS = "http://www.w3.org/2000/01/rdf-schema#"

RDF_TYPE = ox.NamedNode(RDF + "type")
#: the XSD datatypes whose literals are numbers
NUMERIC_DATATYPES = frozenset(XSD + name for name in (
    "integer", "decimal", "double", "float", "long", "int", "short", "byte", "nonNegativeInteger", "positiveInteger",
    "negativeInteger", "nonPositiveInteger", "unsignedLong", "unsignedInt", "unsignedShort", "unsignedByte"))
