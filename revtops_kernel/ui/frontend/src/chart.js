// One Plotly figure as a widget (the app's Artifacts and At risk views): plotly.js comes from
// the kernel on the first chart, so the page needs no plotly lab extension (4.8 MB at load).
import { loadPlotly, themed } from "./plotly.js";

function render({ model, el }) {
  const box = document.createElement("div");
  box.className = "rt-chart rt-chart-widget";
  // the view's width, not the figure's default: a box in a flex column sizes to its content
  el.style.width = box.style.width = "100%";
  el.append(box);
  let plotted = null; // [Plotly, div] once drawn
  // A view rendered before it is laid out (a tab's content built on a click) is 0 px wide when
  // Plotly measures it: redraw to the box's width once it has one, and whenever it changes.
  const resized = new ResizeObserver(() => {
    if (plotted && box.clientWidth) plotted[0].Plots.resize(plotted[1]);
  });
  resized.observe(box);
  const draw = () => {
    const figure = model.get("figure") || {};
    box.textContent = "Loading chart…";
    loadPlotly(model).then((Plotly) => {
      const div = document.createElement("div");
      div.className = "rt-plot";
      box.replaceChildren(div);
      plotted = [Plotly, div];
      return Plotly.newPlot(div, figure.data || [], themed(figure.layout || {}, el), {
        displaylogo: false, responsive: true,
      });
    }).catch((error) => { box.textContent = `The chart could not be drawn: ${error}`; });
  };
  model.on("change:figure", draw);
  draw();
  return () => { model.off("change:figure", draw); resized.disconnect(); box.remove(); };
}

export default { render };
