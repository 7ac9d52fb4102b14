// A result preview as a native table: click a header to sort, "Copy" puts it on the clipboard
// as tab-separated text (pastes into a spreadsheet). Values are text nodes, never HTML.
const number = new Intl.NumberFormat(undefined, { maximumFractionDigits: 2 });

function cellText(value) {
  if (value === null || value === undefined) return "";
  if (typeof value === "number") return number.format(value);
  if (typeof value === "boolean") return value ? "true" : "false";
  return typeof value === "string" ? value : JSON.stringify(value);
}

function compare(a, b) {
  if (a === b) return 0;
  if (a === null || a === undefined) return 1;
  if (b === null || b === undefined) return -1;
  if (typeof a === "number" && typeof b === "number") return a - b;
  return String(a).localeCompare(String(b), undefined, { numeric: true });
}

export function renderTable(table, h, copyButton) {
  const rows = table.rows.slice();
  const numeric = table.columns.map((_, i) => rows.length > 0 && rows.every((r) => r[i] === null || typeof r[i] === "number"));
  let sortedBy = -1;
  let ascending = true;
  const body = h("tbody");
  const fill = () => body.replaceChildren(...rows.map((row) => h("tr", {},
    row.map((value, i) => h("td", { class: numeric[i] ? "rt-num" : null }, cellText(value))))));
  const headers = table.columns.map((name, i) => h("th", {
    class: numeric[i] ? "rt-num" : null, title: "Sort", tabindex: "0",
    onclick: () => {
      ascending = sortedBy === i ? !ascending : true;
      sortedBy = i;
      rows.sort((a, b) => (ascending ? 1 : -1) * compare(a[i], b[i]));
      headers.forEach((th, j) => th.setAttribute("aria-sort", j === i ? (ascending ? "ascending" : "descending") : "none"));
      fill();
    },
  }, String(name)));
  fill();
  const tsv = () => [table.columns, ...rows].map((r) => r.map((v) => cellText(v).replace(/[\t\n]/g, " ")).join("\t")).join("\n");
  const shown = rows.length;
  const caption = `${table.total_rows.toLocaleString()} rows` + (shown < table.total_rows ? `, first ${shown} shown` : "");
  return h("div", { class: "rt-table" },
    h("div", { class: "rt-table-scroll" }, h("table", {}, h("thead", {}, h("tr", {}, headers)), body)),
    h("div", { class: "rt-caption" }, caption, " ", copyButton("Copy", tsv)));
}
