// Markdown to inert DOM in the browser: markdown-it with raw HTML off, then DOMPurify with the
// allowlist the kernel sends (revtops_kernel.safe_html: the one policy, also nh3's on the server).
// Links open in a new tab with noopener; an image renders only from a data: URL (no request
// leaves); any other image is shown as its alt text.
import MarkdownIt from "markdown-it";
import DOMPurify from "dompurify";

const DATA_IMAGE = /^data:image\/(png|jpe?g|gif|webp);base64,[a-z0-9+/=\s]+$/i;

function parser() {
  const md = new MarkdownIt("commonmark", { html: false, linkify: false, typographer: false });
  md.enable(["table", "strikethrough"]);
  const escape = md.utils.escapeHtml;
  // markdown-it's own link check refuses data: images except a few; ours is stricter.
  const validate = md.validateLink;
  md.validateLink = (url) => DATA_IMAGE.test(url) || validate(url);
  md.renderer.rules.image = (tokens, idx) => {
    const token = tokens[idx];
    const alt = (token.children || []).map((child) => child.content).join("");
    const src = token.attrGet("src") || "";
    if (DATA_IMAGE.test(src)) return `<img src="${escape(src)}" alt="${escape(alt)}">`;
    return `[image: ${escape(alt || "untitled")}]`;
  };
  return md;
}

export function makeRenderer(policy) {
  const md = parser();
  const purify = DOMPurify(window);
  const tags = [...policy.tags, "img"];
  const attributes = new Set(["src", "alt"]);
  for (const names of Object.values(policy.attributes)) names.forEach((n) => attributes.add(n));
  const schemes = policy.schemes.map((s) => s.toLowerCase());
  const styles = new Set(policy.style_properties);
  const allowedOn = (tag, name) =>
    (tag === "img" && (name === "src" || name === "alt")) ||
    (policy.attributes[tag] || []).includes(name);

  purify.addHook("uponSanitizeAttribute", (node, data) => {
    const tag = node.nodeName.toLowerCase();
    if (!allowedOn(tag, data.attrName)) {
      data.keepAttr = false;
      return;
    }
    if (data.attrName === "href") {
      const scheme = (data.attrValue.trim().match(/^([a-z][a-z0-9+.-]*):/i) || [])[1];
      if (!scheme || !schemes.includes(scheme.toLowerCase())) data.keepAttr = false;
    } else if (data.attrName === "src") {
      if (!DATA_IMAGE.test(data.attrValue)) data.keepAttr = false;
    } else if (data.attrName === "style") {
      const kept = data.attrValue
        .split(";")
        .map((part) => part.split(":").map((s) => s.trim()))
        .filter(([name, value]) => styles.has((name || "").toLowerCase()) && /^[a-z-]+$/i.test(value || ""))
        .map(([name, value]) => `${name}: ${value}`);
      data.attrValue = kept.join("; ");
      if (!kept.length) data.keepAttr = false;
    }
  });
  purify.addHook("afterSanitizeAttributes", (node) => {
    if (node.nodeName === "A") {
      node.setAttribute("target", "_blank");
      node.setAttribute("rel", "noopener noreferrer nofollow");
    }
    if (node.nodeName === "IMG" && !node.getAttribute("src")) node.remove();
  });
  const config = {
    ALLOWED_TAGS: tags,
    ALLOWED_ATTR: [...attributes],
    ALLOW_DATA_ATTR: false,
    ALLOW_ARIA_ATTR: false,
    ALLOW_UNKNOWN_PROTOCOLS: false,
    RETURN_DOM_FRAGMENT: true,
  };
  return (text) => purify.sanitize(md.render(text || ""), config);
}
