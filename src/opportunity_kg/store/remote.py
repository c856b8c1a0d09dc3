"""A SPARQL server as the store: the path for users who outgrow one machine.

:class:`RemoteStore` speaks the SPARQL 1.1 Protocol (query and update) and
the Graph Store Protocol to any SPARQL server, and offers the few methods of
``pyoxigraph.Store`` that opportunity-kg uses, so ``okg ingest``, ``okg
query``, ``okg serve`` and the Python API work the same on it. Its results
are parsed by pyoxigraph into the same term objects as the embedded store's.

A store "path" that is a URL names the server: ``http://host:7878`` is an
Oxigraph server (``/query``, ``/update``, ``/store``); other servers are named
by their three URLs, ``query=URL,update=URL,store=URL`` (Fuseki:
``.../ds/query``, ``.../ds/update``, ``.../ds/data``).
"""

import urllib.error
import urllib.parse
import urllib.request

import pyoxigraph as ox

from .. import settings
from ..errors import OkgError, QueryError
from ..mapping.rml import quad_data


def is_remote(location):
    text = str(location)
    return text.startswith(("http://", "https://", "query="))


class RemoteStore:
    def __init__(self, location):
        text = str(location)
        if text.startswith("query="):
            parts = dict(part.split("=", 1) for part in text.split(","))
            self.query_url, self.update_url, self.store_url = parts["query"], parts.get("update"), parts.get("store")
        else:
            base = text.rstrip("/")
            self.query_url, self.update_url, self.store_url = base + "/query", base + "/update", base + "/store"
        self.location = text

    def __str__(self):
        return self.location

    def _request(self, url, data=None, headers=None, method=None):
        request = urllib.request.Request(url, data=data, headers=headers or {}, method=method)
        try:
            with urllib.request.urlopen(request, timeout=settings.get("remote_timeout")) as response:
                return response.read(), response.headers.get("Content-Type", "")
        except urllib.error.HTTPError as exc:
            detail = exc.read().decode("utf-8", "replace")[:500]
            if exc.code == 400:
                raise QueryError(f"the SPARQL server rejected the request: {detail}") from None
            if exc.code == 404:
                return None, ""
            raise OkgError(f"the SPARQL server at {url} answered {exc.code}: {detail}") from None
        except (urllib.error.URLError, OSError) as exc:
            raise OkgError(f"cannot reach the SPARQL server at {url}: {getattr(exc, 'reason', exc)}") from None

    def query(self, query, default_graph=None, named_graphs=None, use_default_graph_as_union=False):
        params = [("query", query)]
        params += [("default-graph-uri", g.value) for g in default_graph or []]
        if default_graph is not None and named_graphs is None:
            # the protocol's dataset has no named graphs unless they are named; the embedded store's
            # default_graph keeps them all, so name them all
            named_graphs = self.named_graphs()
        params += [("named-graph-uri", g.value) for g in named_graphs or []]
        if use_default_graph_as_union:
            params.append(("union-default-graph", ""))
        body, content_type = self._request(
            self.query_url, urllib.parse.urlencode(params).encode(),
            {"Content-Type": "application/x-www-form-urlencoded",
             "Accept": "application/sparql-results+json, application/n-triples;q=0.9"})
        if body is None:
            raise OkgError(f"no SPARQL endpoint at {self.query_url}")
        if content_type.startswith("application/n-triples"):
            return ox.parse(body, format=ox.RdfFormat.N_TRIPLES)
        return ox.parse_query_results(body, format=ox.QueryResultsFormat.JSON)

    def update(self, update):
        if not self.update_url:
            raise OkgError("no update URL for the SPARQL server; name it with update=URL")
        self._request(self.update_url, update.encode("utf-8"), {"Content-Type": "application/sparql-update"})

    def quads_for_pattern(self, subject, predicate, obj, graph):
        if subject is not None or predicate is not None or obj is not None or graph is None:
            raise NotImplementedError("only whole named graphs are read from a SPARQL server")
        body, _ = self._request(f"{self.store_url}?{urllib.parse.urlencode({'graph': graph.value})}",
                                headers={"Accept": "application/n-triples"})
        if not body:
            return iter(())
        return ox.parse(body, format=ox.RdfFormat.N_TRIPLES)

    def named_graphs(self):
        return [row[0] for row in self.query("SELECT DISTINCT ?g WHERE { GRAPH ?g { } }")]

    def contains_named_graph(self, graph):
        return bool(self.query(f"ASK {{ GRAPH <{graph.value}> {{ ?s ?p ?o }} }}"))

    def write(self, adds, removes):
        """Apply the changes in one update request (one transaction on servers that have them)."""
        parts = []
        if removes:
            parts.append(f"DELETE DATA {{ {quad_data(removes)} }}")
        if adds:
            parts.append(f"INSERT DATA {{ {quad_data(adds)} }}")
        if parts:
            self.update(" ;\n".join(parts))
