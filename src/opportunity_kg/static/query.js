// The analysts' query page: YASGUI on /sparql with the project's prefixes, and every canned query as an example.
const PREFIXES = {
  okg: "https://w3id.org/opportunity-kg/ontology#",
  rdfs: "http://www.w3.org/2000/01/rdf-schema#",
  xsd: "http://www.w3.org/2001/XMLSchema#",
  skos: "http://www.w3.org/2004/02/skos/core#",
  prov: "http://www.w3.org/ns/prov#",
};
const HEADER = Object.entries(PREFIXES).map(([p, iri]) => `PREFIX ${p}: <${iri}>`).join("\n");
const START = `${HEADER}

SELECT ?stage (COUNT(?opportunity) AS ?opportunities) (SUM(?amount) AS ?total)
WHERE {
  ?opportunity a okg:Opportunity ; okg:stage ?stage .
  OPTIONAL { ?opportunity okg:amount ?amount }
}
GROUP BY ?stage
ORDER BY DESC(?opportunities)`;

const yasgui = new Yasgui(document.getElementById("yasgui"), {
  requestConfig: { endpoint: new URL("/sparql", window.location.href).href, method: "POST" },
  copyEndpointOnNewTab: false,
  persistenceId: null,
  yasqe: { value: START },
});
window.okgYasgui = yasgui;
const tab = yasgui.getTab();
tab.getYasqe().setValue(START);
tab.getYasqe().addPrefixes(PREFIXES);

function thisQuarter() {
  const now = new Date();
  return `${now.getFullYear()}-Q${Math.floor(now.getMonth() / 3) + 1}`;
}

function exampleValue(param) {
  if (param.default !== undefined) return param.default;
  if (param.type === "period") return thisQuarter();
  if (param.type === "date") return new Date().toISOString().slice(0, 10);
  if (param.choices && param.choices.length) return param.choices[0];
  return "";
}

fetch("/api/queries").then((r) => r.json()).then(({ queries }) => {
  const list = document.getElementById("examples");
  for (const q of queries) {
    const item = document.createElement("li");
    const open = document.createElement("a");
    open.href = "#";
    open.textContent = q.title;
    open.title = q.description;
    open.dataset.query = q.name;
    open.onclick = async (event) => {
      event.preventDefault();
      const args = new URLSearchParams();
      for (const p of q.parameters) args.set(p.name, exampleValue(p));
      const text = await (await fetch(`/api/queries/${q.name}.rq?${args}`)).text();
      const current = yasgui.getTab();
      current.setQuery(text);
    };
    const page = document.createElement("a");
    page.href = `/queries/${q.name}`;
    page.textContent = "page";
    page.className = "page-link";
    item.append(open, " (", page, ")");
    if (q.support && q.support.level !== "full") {
      const note = document.createElement("span");
      note.className = "support";
      note.dataset.level = q.support.level;
      note.textContent = q.support.level === "none" ? " not at all with this data" : " in part with this data";
      note.title = q.support.notes.join("; ");
      item.append(note);
    }
    list.append(item);
  }
});
