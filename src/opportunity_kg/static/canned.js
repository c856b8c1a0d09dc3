// A canned query's page: a form for its typed parameters, the results as a table and a bar chart, a CSV link.
const name = document.body.dataset.query;
const form = document.getElementById("parameters");

function thisQuarter() {
  const now = new Date();
  return `${now.getFullYear()}-Q${Math.floor(now.getMonth() / 3) + 1}`;
}

function field(p) {
  const label = document.createElement("label");
  label.textContent = `${p.name} `;
  label.title = p.description;
  let input;
  if (p.choices && p.choices.length) {
    input = document.createElement("select");
    for (const c of p.choices) input.append(new Option(c, c));
  } else {
    input = document.createElement("input");
    input.type = { date: "date", integer: "number", number: "number" }[p.type] || "text";
    if (p.type === "number") input.step = "any";
    if (p.type === "period") input.placeholder = "2026-Q4, 2026-H2, 2026-11 or 2026";
  }
  input.name = p.name;
  input.required = !!p.required;
  input.value = p.default !== undefined ? p.default : (p.type === "period" ? thisQuarter() : "");
  label.append(input);
  return label;
}

function esc(text) {
  return String(text).replace(/&/g, "&amp;").replace(/</g, "&lt;");
}

function drawTable(rows) {
  const table = document.getElementById("results");
  if (!rows.length) {
    // an empty answer says why: what the loaded data lacks, else that nothing matched
    table.innerHTML = `<caption>No results. ${esc(supportText || "Nothing in the store matches these parameters.")}</caption>`;
    return;
  }
  const columns = Object.keys(rows[0]);
  table.innerHTML = "<thead><tr>" + columns.map((c) => `<th>${esc(c)}</th>`).join("") + "</tr></thead><tbody>" +
    rows.map((r) => "<tr>" + columns.map((c) => `<td>${r[c] === null ? "" : esc(r[c])}</td>`).join("") + "</tr>")
      .join("") + "</tbody>";
}

// Horizontal bars: the first text column as labels, the last numeric column as lengths.
function drawChart(rows) {
  const figure = document.getElementById("chart");
  figure.innerHTML = "";
  if (!rows.length) return;
  const columns = Object.keys(rows[0]);
  const numeric = columns.filter((c) => rows.every((r) => r[c] === null || typeof r[c] === "number"));
  const labels = columns.find((c) => !numeric.includes(c));
  if (!numeric.length || !labels) return;
  const value = numeric[numeric.length - 1];
  const shown = rows.slice(0, 25);
  const max = Math.max(...shown.map((r) => r[value] || 0), 1);
  const barHeight = 22, labelWidth = 200, width = 720;
  const svg = [`<svg class="chart" xmlns="http://www.w3.org/2000/svg" width="${width}" height="${shown.length * barHeight + 10}" role="img" aria-label="${esc(value)} by ${esc(labels)}">`];
  shown.forEach((r, i) => {
    const length = Math.round(((r[value] || 0) / max) * (width - labelWidth - 110));
    const y = i * barHeight + 5;
    svg.push(`<text x="${labelWidth - 6}" y="${y + 15}" text-anchor="end">${esc(r[labels] ?? "")}</text>`);
    svg.push(`<rect x="${labelWidth}" y="${y}" width="${length}" height="${barHeight - 6}"><title>${esc(r[value])}</title></rect>`);
    svg.push(`<text x="${labelWidth + length + 6}" y="${y + 15}">${(r[value] || 0).toLocaleString()}</text>`);
  });
  svg.push("</svg>");
  figure.innerHTML = svg.join("") + `<figcaption>${esc(value)} by ${esc(labels)}</figcaption>`;
}

async function run(event) {
  if (event) event.preventDefault();
  const args = new URLSearchParams(new FormData(form));
  document.getElementById("download").href = `/api/queries/${name}.csv?${args}`;
  const response = await fetch(`/api/queries/${name}.json?${args}`);
  const body = await response.json();
  const error = document.getElementById("error");
  if (!response.ok) { error.textContent = body.message; drawTable([]); drawChart([]); return; }
  error.textContent = "";
  drawTable(body);
  drawChart(body);
}

let supportText = "";

function showSupport(support) {
  // what the loaded data lets this query answer: fully, in part (and what is missing) or not at all
  if (!support || support.level === "full") return;
  const words = { partial: "The loaded data answers this query in part", none: "The loaded data cannot answer this query" };
  supportText = `${words[support.level]}: ${support.notes.join("; ")}.`;
  const line = document.getElementById("support");
  line.textContent = supportText;
  line.dataset.level = support.level;
}

fetch("/api/queries").then((r) => r.json()).then(({ queries }) => {
  const q = queries.find((x) => x.name === name);
  document.getElementById("description").textContent = q.description;
  showSupport(q.support);
  for (const p of q.parameters) form.append(field(p));
  const button = document.createElement("button");
  button.textContent = "Run";
  form.append(button);
  form.onsubmit = run;
});
