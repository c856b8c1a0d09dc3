"""The pages a person opens: the query page (``/``), a canned query's page (``/queries/<name>``) and the
ontology (``/ontology``: pyLODE HTML for a browser, RDF for an RDF client)."""

import html
from pathlib import Path

from flask import Blueprint, Response, request

from .. import __version__
from ..errors import NotFound
from ..tools.ontology_docs import DOC_FORMATS, RDF_FORMATS, documentation_html, modules, ontology_rdf
from ..analytics.queries import get_query
from .formats import negotiate

pages = Blueprint("pages", __name__)
STATIC = Path(__file__).resolve().parents[1] / "static"


@pages.route("/")
def index():
    page = (STATIC / "query.html").read_text(encoding="utf-8")
    return Response(page.replace("{version}", __version__), mimetype="text/html")


@pages.route("/queries/<name>")
def canned_page(name):
    query = get_query(name)
    page = (STATIC / "canned.html").read_text(encoding="utf-8")
    page = page.replace("{title}", html.escape(query.title)).replace("{name}", html.escape(name))
    return Response(page, mimetype="text/html")


@pages.route("/ontology")
@pages.route("/ontology/")
@pages.route("/ontology.<suffix>")
@pages.route("/ontology/<version>")
def ontology(suffix=None, version=None):
    module = version if version in modules() else None
    if version is not None and module is None and version not in (__version__, "index.html"):
        raise NotFound(f"no ontology version or module {version}; this server has version {__version__} "
                       f"and the modules {', '.join(modules())}")
    fmt = negotiate(request.headers.get("Accept"), request.args.get("format") or suffix, DOC_FORMATS, "html")
    if fmt == "html":
        response = Response(documentation_html(), mimetype="text/html")
    else:
        response = Response(ontology_rdf(fmt, module=module), mimetype=RDF_FORMATS[fmt][1])
    response.headers["Vary"] = "Accept"
    return response
