"""The README keeps up with the code: every setting, canned query and CLI command is documented."""

from opportunity_kg.cli import build_parser
from opportunity_kg.mapping.functions import OKGFN, REGISTRY
from opportunity_kg.analytics.queries import load_queries
from opportunity_kg.settings import SETTINGS

from .conftest import ROOT

README = (ROOT / "README.md").read_text(encoding="utf-8")


def test_every_setting_is_documented():
    for name, setting in SETTINGS.items():
        assert f"`OKG_{name.upper()}`" in README, name
        assert setting.description in README, name


def test_every_canned_query_is_documented():
    for name, query in load_queries().items():
        assert f"`{name}`" in README, name
        for param in query.params:
            assert f"`{param.name}`" in README, (name, param.name)


def test_the_readme_lists_exactly_the_canned_queries_in_the_folder():
    """The one-line list and the table under "Canned queries" name the folder's queries, no more."""
    import re

    section = README.split("## Canned queries", 1)[1].split("\n## ", 1)[0]
    listed = set(re.findall(r"^- `([a-z0-9-]+)`:", section, re.M))
    tabled = set(re.findall(r"^\| `([a-z0-9-]+)` \|", section, re.M))
    assert listed == tabled == set(load_queries())


def test_every_command_is_documented():
    commands = build_parser()._subparsers._group_actions[0].choices
    for command in commands:
        assert f"okg {command}" in README, command


def test_every_okg_function_is_documented():
    for iri in REGISTRY:
        if iri.startswith(OKGFN):
            assert "okgfn:" + iri[len(OKGFN):] in README, iri


def test_model_diagram_is_up_to_date():
    from opportunity_kg.tools.diagram import END, START, model_diagram

    assert f"{START}\n{model_diagram()}{END}" in README, "run: okg diagram --write README.md"
