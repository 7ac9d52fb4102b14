// Bundles src/app.js (the app page's front end) with its npm packages into the committed assets
// ../static/app.js and app.css (the widgets' and Font Awesome's styles; Font Awesome's fonts
// beside them), and writes the bundled packages' licenses next to them.
// Run: npm ci && npm run build. The CI machine has no node: the committed bundle ships.
import { build } from "esbuild";
import { readFileSync, readdirSync, rmSync, writeFileSync } from "node:fs";

const here = new URL(".", import.meta.url);
const out = new URL("../static/", import.meta.url);
rmSync(out, { recursive: true, force: true });

const pages = {
  name: "revtops-page",
  setup(build) {
    // ipywidgets 7's models never reach this page (the kernel runs ipywidgets 8): the HTML
    // manager's branch for them, and the lab variables it adds where no theme is loaded (the
    // page has JupyterLab's theme; these would override a dark one), are left out.
    build.onResolve(
      { filter: /^@jupyter-widgets\/(controls7|base7)(\/.*)?$|\/controls\/css\/labvariables\.css$/ },
      (args) => ({ path: args.path, namespace: "left-out" }),
    );
    build.onLoad({ filter: /.*/, namespace: "left-out" }, (args) => ({
      contents: "",
      loader: args.path.endsWith(".css") ? "css" : "js",
    }));
    // Node's websocket package: @jupyterlab/services asks for it only outside a browser.
    build.onResolve({ filter: /^ws$/ }, () => ({ path: "ws", namespace: "left-out" }));
    // Font Awesome (the buttons' icons) with its woff2 fonts only: every browser the page
    // supports reads them, and the other four formats would add 2.8 MB to the package.
    build.onLoad({ filter: /fontawesome-free[\\/]css[\\/].*\.css$/ }, (args) => {
      const source = readFileSync(args.path, "utf8");
      const woff2 = (src) => `src:url(${src.match(/url\(([^)]*\.woff2)\)/)[1]}) format("woff2")`;
      return { contents: source.replace(/src:[^;}]*\.woff2[^;}]*/g, woff2).replace(/src:url\([^)]*\.eot\);/g, ""), loader: "css" };
    });
    // anywidget's package is an AMD module (define([base], factory)) for JupyterLab's loader;
    // here its factory is imported and called with this page's @jupyter-widgets/base.
    build.onLoad({ filter: /anywidget[\\/]dist[\\/]index\.js$/ }, (args) => {
      const source = readFileSync(args.path, "utf8");
      const amd = 'define(["@jupyter-widgets/base"], widget_default);';
      if (!source.includes(amd)) throw new Error("anywidget's module no longer ends in " + amd);
      return { contents: source.replace(amd, "export default widget_default;"), loader: "js" };
    });
  },
};

await build({
  entryPoints: [new URL("src/app.js", here).pathname],
  bundle: true,
  format: "esm",
  minify: true,
  target: ["es2020"],
  legalComments: "none",
  outdir: new URL(".", out).pathname,
  entryNames: "[name]",
  assetNames: "fonts/[name]-[hash]",
  loader: { ".woff": "file", ".woff2": "file", ".ttf": "file", ".eot": "file", ".svg": "file" },
  define: { "process.env.NODE_ENV": '"production"' },
  plugins: [pages],
  metafile: true,
}).then((result) => writeFileSync(new URL("meta.json", here), JSON.stringify(result.metafile)));

// The licenses of every package the bundle holds (from the build's own list of inputs).
const meta = JSON.parse(readFileSync(new URL("meta.json", here)));
const bundled = new Set();
for (const input of Object.keys(meta.inputs)) {
  const match = input.match(/node_modules\/((?:@[^/]+\/)?[^/]+)\//g);
  if (match) bundled.add(match.at(-1).slice("node_modules/".length, -1));
}
const notices = [];
for (const name of [...bundled].sort()) {
  const dir = new URL(`node_modules/${name}/`, here);
  const info = JSON.parse(readFileSync(new URL("package.json", dir)));
  const file = readdirSync(dir).find((f) => /^licen[cs]e/i.test(f));
  const text = file ? readFileSync(new URL(file, dir), "utf8").trim() : `(${info.license})`;
  notices.push(`${name} ${info.version} (${info.license})\n\n${text}\n`);
}
writeFileSync(
  new URL("THIRD_PARTY_LICENSES.txt", out),
  "Bundled into app.js and app.css (see ../frontend/package-lock.json):\n\n" +
    notices.join("\n" + "-".repeat(72) + "\n\n"),
);
