"""The pages in a real browser: headless Chromium (Debian's `chromium`) driven by playwright.

The query page: type a query into YASGUI, run it, read the result table. A canned query's page:
fill the form, submit, see the chart and the table, and the CSV link.
"""

import shutil
from pathlib import Path

import pytest

CHROMIUM = Path("/usr/bin/chromium")
pytestmark = pytest.mark.skipif(not CHROMIUM.exists() or shutil.which("chromium") is None,
                                reason="Debian's chromium is not installed (.ci/run installs it)")
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync"]


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=str(CHROMIUM), args=FLAGS)
        yield chromium
        chromium.close()


@pytest.fixture
def page(browser):
    context = browser.new_context()
    page = context.new_page()
    errors = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    yield page
    context.close()
    assert not errors, errors


def test_query_page_runs_a_typed_query(page, server, open_sample_store):
    from opportunity_kg.store import run_query

    query = ("PREFIX okg: <https://w3id.org/opportunity-kg/ontology#>\n"
             "SELECT ?stage (COUNT(?o) AS ?n) WHERE { ?o a okg:Opportunity ; okg:stage ?stage }\n"
             "GROUP BY ?stage ORDER BY DESC(?n) ?stage")
    expected = [(r[0].value, r[1].value) for r in run_query(open_sample_store, query).rows]
    page.goto(server + "/")
    editor = page.locator(".CodeMirror").first
    editor.wait_for()
    editor.click()
    page.keyboard.press("Control+A")
    page.keyboard.press("Delete")
    page.keyboard.insert_text(query)
    page.locator(".yasqe_queryButton").first.click()
    rows = page.locator(".yasr table tbody tr")
    rows.first.wait_for(timeout=20000)
    first_cells = rows.first.locator("td").all_inner_texts()
    assert any(expected[0][0].rsplit("/", 1)[-1] in cell or expected[0][0] in cell for cell in first_cells), first_cells
    assert expected[0][1] in " ".join(first_cells)
    assert page.locator("#examples li").count() >= 1  # every canned query is listed as an example


def test_canned_query_page_draws_a_chart(page, server):
    page.goto(server + "/queries/weighted-pipeline")
    period = page.locator("input[name=period]")
    period.wait_for()
    period.fill("2026-Q4")
    page.get_by_role("button", name="Run").click()
    page.locator("svg.chart rect").first.wait_for(timeout=20000)
    bars = page.locator("svg.chart rect").count()
    rows = page.locator("#results tbody tr").count()
    assert bars == min(rows, 25) and rows > 5
    assert page.locator("#download").get_attribute("href") == "/api/queries/weighted-pipeline.csv?period=2026-Q4"
    period.fill("not a period")
    page.get_by_role("button", name="Run").click()
    page.locator("#error").filter(has_text="period").wait_for(timeout=10000)


def test_a_canned_page_says_what_the_data_cannot_answer_and_why_it_is_empty(page, server):
    """The sample's Salesforce export has no GLEIF file: the page says so before and after a run."""
    page.goto(server + "/queries/parents-on-date")
    line = page.locator("#support")
    line.filter(has_text="no legal entities").wait_for(timeout=10000)
    assert line.get_attribute("data-level") == "none"
    page.locator("input[name=on]").fill("2026-01-01")
    page.get_by_role("button", name="Run").click()
    caption = page.locator("#results caption")
    caption.filter(has_text="No results").wait_for(timeout=10000)
    assert "no legal entities" in caption.inner_text()
    page.goto(server + "/queries/weighted-pipeline")
    page.locator("input[name=period]").wait_for()
    assert page.locator("#support").inner_text() == ""  # fully supported: nothing to say
