// Bundles src/chat.js (with markdown-it and DOMPurify from node_modules) and src/chart.js into
// the package's committed assets ../static/chat.js and chart.js, and writes the bundled
// packages' licenses next to them.
// Run: npm ci && npm run build. The CI machine has no node: the committed bundle ships.
import { build } from "esbuild";
import { readFileSync, writeFileSync } from "node:fs";

const out = new URL("../static/", import.meta.url);
// chat.js (the chat) and chart.js (one figure, for the app's other views): two widgets' modules
await build({
  entryPoints: ["chat.js", "chart.js"].map((name) => new URL(`src/${name}`, import.meta.url).pathname),
  bundle: true,
  format: "esm",
  minify: true,
  target: ["es2020"],
  legalComments: "none",
  outdir: new URL(".", out).pathname,
});

const lock = JSON.parse(readFileSync(new URL("package-lock.json", import.meta.url)));
const notices = [];
for (const [path, info] of Object.entries(lock.packages)) {
  if (!path || info.dev) continue;
  const dir = new URL(path + "/", import.meta.url);
  const name = path.replace(/^.*node_modules\//, "");
  let text = "";
  for (const file of ["LICENSE", "LICENSE.txt", "LICENSE.md", "license"]) {
    try { text = readFileSync(new URL(file, dir), "utf8"); break; } catch { /* next name */ }
  }
  notices.push(`${name} ${info.version} (${info.license})\n\n${text.trim()}\n`);
}
writeFileSync(
  new URL("THIRD_PARTY_LICENSES.txt", out),
  "Bundled into chat.js (see ../frontend/package-lock.json):\n\n" +
    notices.join("\n" + "-".repeat(72) + "\n\n"),
);
