// The web app page's light front end: one ES module instead of Voila's (voila.js and ~90
// JupyterLab chunks). It does what Voila's front end does on a page, and nothing else:
//   1. reads the page's config (its kernel id and base URL, from #jupyter-config-data),
//   2. connects to that kernel over Voila's kernel websocket (@jupyterlab/services; the server
//      still lets only widget messages through it),
//   3. asks the kernel for every widget's state on the `jupyter.widget.control` comm (ipywidgets'
//      ManagerBase._loadFromKernel; a preheated kernel holds the answer until its visitor is bound),
//   4. renders the notebook's outputs (the cell-output scripts Voila's template leaves) with the
//      widget manager's renderers: @jupyter-widgets/controls and anywidget (the chat, the charts),
//   5. shows the rendered cells and, when the page is left, asks Voila to shut the kernel down.
import * as base from "@jupyter-widgets/base";
import { HTMLManager } from "@jupyter-widgets/html-manager/lib/htmlmanager.js";
import { KernelConnection } from "@jupyterlab/services/lib/kernel/default.js";
import { ServerConnection } from "@jupyterlab/services/lib/serverconnection.js";
import { MimeModel } from "@jupyterlab/rendermime/lib/mimemodel.js";
import { MessageLoop } from "@lumino/messaging";
import { Widget } from "@lumino/widgets";
import anywidget from "anywidget";
import "@jupyter-widgets/base/css/index.css";
import "@jupyter-widgets/controls/css/widgets-base.css";
import "@jupyter-widgets/html-manager/css/output.css";
import "@fortawesome/fontawesome-free/css/all.min.css";
import "@fortawesome/fontawesome-free/css/v4-shims.min.css";

const CELL_OUTPUT = 'script[type="application/vnd.voila.cell-output+json"]';
const ANYWIDGET = anywidget(base); // anywidget's AnyModel and AnyView, on this page's base

/** ipywidgets' HTML manager, its comms on the page's live kernel (as ipywidgets' web3 example). */
class PageManager extends HTMLManager {
  constructor(kernel) {
    super();
    this.kernel = kernel;
    // widgets the kernel creates later (a tab opened, an answer's parts) arrive as comm opens
    kernel.registerCommTarget(this.comm_target_name, (comm, message) =>
      this.handle_comm_open(new base.shims.services.Comm(comm), message),
    );
  }

  async loadClass(className, moduleName, moduleVersion) {
    if (moduleName === "anywidget") {
      const found = ANYWIDGET[className];
      if (!found) throw new Error(`Class ${className} not found in anywidget`);
      return found;
    }
    return super.loadClass(className, moduleName, moduleVersion);
  }

  async _create_comm(targetName, modelId, data, metadata, buffers) {
    const comm = this.kernel.createComm(targetName, modelId);
    if (data || metadata) comm.open(data, metadata, buffers);
    return new base.shims.services.Comm(comm);
  }

  async _get_comm_info() {
    const reply = await this.kernel.requestCommInfo({ target_name: this.comm_target_name });
    return reply.content.status === "ok" ? reply.content.comms : {};
  }
}

function pageConfig() {
  const element = document.getElementById("jupyter-config-data");
  return element ? JSON.parse(element.textContent) : {};
}

/** Each cell output the template left as JSON, rendered where it stood (as Voila does);
 * returns the renderers (Lumino widgets) attached. */
async function renderOutputs(manager) {
  const renderers = [];
  const rendered = [];
  for (const script of document.body.querySelectorAll(CELL_OUTPUT)) {
    const output = JSON.parse(script.textContent);
    const mimeType = output.data && manager.renderMime.preferredMimeType(output.data, "any");
    if (!mimeType) continue;
    const renderer = manager.renderMime.createRenderer(mimeType);
    renderer.addClass("jp-OutputArea-output");
    const container = script.parentElement;
    script.remove();
    Widget.attach(renderer, container);
    renderers.push(renderer);
    rendered.push(
      renderer
        .renderModel(new MimeModel({ data: output.data, metadata: output.metadata || {} }))
        .catch((error) => {
          const pre = document.createElement("pre");
          pre.className = "lm-Widget jp-RenderedText";
          pre.setAttribute("data-mime-type", "application/vnd.jupyter.stderr");
          pre.textContent = `Javascript Error: ${error.message}`;
          renderer.node.appendChild(pre);
        }),
    );
  }
  await Promise.all(rendered);
  return renderers;
}

function showCells() {
  window.themeLoaded = true; // what Voila's theme plugin sets: voila_finish shows cells now
  document.getElementById("loading")?.remove();
  const cells = document.getElementById("rendered_cells");
  if (cells) cells.style.display = "";
}

/** The bundle's stylesheet, which the template loads without holding back the page's first
 * paint (the shell needs none of it): the views are built once it applies. */
function stylesheet() {
  const link = document.getElementById("rt-app-css");
  if (!link || (link.sheet && link.media !== "print")) return Promise.resolve();
  return new Promise((resolve) => {
    const done = () => {
      link.media = "all";
      resolve();
    };
    link.addEventListener("load", done, { once: true });
    link.addEventListener("error", done, { once: true });
    if (link.sheet) done(); // it arrived before this module ran
  });
}

async function start() {
  // The cells are shown at once (as Voila's theme plugin does: the shell still covers them
  // until the chat widget takes it over, or steps aside for a failed cell).
  showCells();
  const config = pageConfig();
  const baseUrl = config.baseUrl || "/";
  const serverSettings = ServerConnection.makeSettings({
    baseUrl,
    wsUrl: `${location.protocol === "https:" ? "wss:" : "ws:"}//${location.host}${baseUrl}`,
    token: config.token || "",
    appendToken: Boolean(config.token),
  });
  const kernel = new KernelConnection({
    model: { id: config.kernelId, name: "python3" },
    serverSettings,
    // the websocket carries comm and kernel_info messages only (Voila refuses the rest, e.g.
    // the subshell requests @jupyterlab/services would send for comms)
    commsOverSubshells: "disabled",
  });
  const manager = new PageManager(kernel);
  window.addEventListener("beforeunload", () => {
    // Voila's own front end does the same: the kernel is the page's, it ends with it
    const data = new FormData();
    data.append("_xsrf", (document.cookie.match("\\b_xsrf=([^;]*)\\b") || [])[1] || "");
    navigator.sendBeacon(`${baseUrl}voila/api/shutdown/${kernel.id}`, data);
    kernel.dispose();
  });
  await Promise.all([manager._loadFromKernel(), stylesheet()]);
  const renderers = await renderOutputs(manager);
  // Lumino widgets (the tabs) lay out on resize messages; Voila's shell sends them
  window.addEventListener("resize", () => {
    for (const renderer of renderers) {
      MessageLoop.sendMessage(renderer, Widget.ResizeMessage.UnknownSize);
    }
  });
}

start().catch((error) => {
  console.error("the page's front end did not start", error);
  showCells();
  window.revtopsShell?.take?.(); // show the page as it is: the shell would hide the failure
});
