// Plotly, loaded on the first chart from the kernel (plotly's own plotly.min.js, never a CDN).
// The chat and the chart widget are two bundles: the loaded library is kept on globalThis so a
// page asks its kernel for it once, whichever widget draws first.
const KEY = "__revtopsPlotly";

export function loadPlotly(model) {
  if (!globalThis[KEY]) {
    globalThis[KEY] = new Promise((resolve, reject) => {
      const onMessage = (msg, buffers) => {
        if (!msg || msg.t !== "plotly") return;
        model.off("msg:custom", onMessage);
        try {
          const code = new TextDecoder().decode(bytes(buffers[0]));
          const module = { exports: {} };
          new Function("module", "exports", "define", code)(module, module.exports, undefined);
          resolve(module.exports);
        } catch (error) {
          globalThis[KEY] = null;
          reject(error);
        }
      };
      model.on("msg:custom", onMessage);
      model.send({ t: "plotly" });
    });
  }
  return globalThis[KEY];
}

export function bytes(buffer) {
  if (buffer instanceof ArrayBuffer) return new Uint8Array(buffer);
  return new Uint8Array(buffer.buffer, buffer.byteOffset, buffer.byteLength);
}

// The page's theme on a figure; axis labels get their room (automargin) below their title.
export function themed(layout, el) {
  const style = getComputedStyle(el);
  const color = style.getPropertyValue("--jp-ui-font-color1").trim() || style.color;
  const axis = (a) => ({ ...(a || {}), automargin: true, title: { ...titleOf(a), standoff: 12 } });
  return {
    ...layout,
    xaxis: axis(layout.xaxis),
    yaxis: axis(layout.yaxis),
    paper_bgcolor: "rgba(0,0,0,0)",
    plot_bgcolor: "rgba(0,0,0,0)",
    font: { ...(layout.font || {}), color },
    autosize: true,
    height: layout.height || 360,
  };
}

function titleOf(axis) {
  const title = axis && axis.title;
  return typeof title === "string" ? { text: title } : { ...(title || {}) };
}
