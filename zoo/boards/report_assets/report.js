// zoo report: builds the page from the JSON block #zoo-data (see zoo/report.py). No network, no libraries.
(function () {
  "use strict";
  const data = JSON.parse(document.getElementById("zoo-data").textContent);

  function el(tag, attrs, ...kids) {
    const node = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (k === "class") node.className = v;
      else if (k === "text") node.textContent = v;
      else if (k.startsWith("on")) node.addEventListener(k.slice(2), v);
      else if (v !== null && v !== undefined && v !== false) node.setAttribute(k, v === true ? "" : v);
    }
    for (const kid of kids.flat(Infinity)) if (kid !== null && kid !== undefined) node.append(kid);
    return node;
  }

  function digits(label) {
    return label.startsWith("ssim") || ["lpips", "lpips_vgg", "kid"].includes(label) ? 4 : 2;
  }
  function fmt(value, col) {
    return value === null || value === undefined ? "n/a" : Number(value).toFixed(digits(col.label));
  }
  function fmtParams(n) {
    return n >= 1e6 ? (n / 1e6).toFixed(2) + "M" : n >= 1e3 ? (n / 1e3).toFixed(1) + "k" : String(n);
  }
  function describe(col) {
    const dir = !col.ranked ? "descriptive, not ranked" : col.higher ? "higher is better" : "lower is better";
    return [col.label, col.unit && `unit ${col.unit}`, dir, col.convention, col.weights && `weights ${col.weights}`]
      .filter(Boolean).join("; ");
  }

  // -- header and filters ------------------------------------------------------------------------------
  document.body.append(el("h1", { text: data.title }));
  const testSets = [...new Set(data.sections.map((s) => s.test_set))];
  const filter = el("input", { type: "search", id: "filter", placeholder: "filter models (e.g. edsr, pix2pix)",
                               size: 32, oninput: applyFilter });
  const testSelect = el("select", { id: "testset", onchange: applyFilter },
    el("option", { value: "", text: "all test sets" }), testSets.map((t) => el("option", { value: t, text: t })));
  document.body.append(el("nav", {}, filter, testSelect,
    el("a", { href: "#compare", text: "compare images" }), el("a", { href: "#notes", text: "notes" })));

  // -- one table per section ---------------------------------------------------------------------------
  const sections = [];
  for (const sec of data.sections) {
    const box = el("section", { id: sec.id, "data-test": sec.test_set });
    box.append(el("h2", { text: sec.title }),
      el("p", { class: "sub", text: `Test set ${sec.test_set}, x${sec.scale}, n = ${sec.n} images. ` +
                                    "Click a column to sort, a row for its per-image values." }));
    const cols = sec.columns;
    const best = {};
    for (const c of cols) {
      const vals = sec.rows.map((r) => (r.values[c.key] || {}).v).filter((v) => v !== null && v !== undefined);
      if (c.ranked && vals.length) best[c.key] = c.higher ? Math.max(...vals) : Math.min(...vals);
    }
    const head = el("tr", {}, el("th", { text: "model", "data-key": "_label" }),
      cols.map((c) => el("th", { "data-key": c.key, title: describe(c) }, c.label + " ",
        el("span", { class: "arrow", text: c.ranked ? (c.higher ? "↑" : "↓") : "" }))),
      el("th", { "data-key": "_params", text: "params" }), el("th", { "data-key": "_train", text: "train s" }),
      el("th", { "data-key": "_ips", text: "images/s" }));
    const body = el("tbody");
    const table = el("table", { class: "board" }, el("thead", {}, head), body);
    for (const r of sec.rows) {
      const label = r.label + (r.order && sec.stage === "pipeline" ? ` (${r.order})` : "");
      const tr = el("tr", { class: "row" + (r.baseline ? " baseline" : ""), "data-label": label.toLowerCase() },
        el("td", { text: label }));
      for (const c of cols) {
        const v = r.values[c.key] || { v: null, why: "not computed" };
        const cls = v.failed ? "failed" : v.v === null || v.v === undefined ? "na" : v.v === best[c.key] ? "best" : "";
        let text = v.failed ? "failed" : fmt(v.v, c);
        if (v.std !== null && v.std !== undefined && v.v !== null) text += " ± " + Number(v.std).toFixed(4);
        tr.append(el("td", { class: cls, title: v.why || describe(c), "data-v": v.v ?? "" , text }));
      }
      tr.append(el("td", { text: fmtParams(r.params), "data-v": r.params }),
        el("td", { text: Math.round(r.train_s || 0), "data-v": r.train_s || 0 }),
        el("td", { text: r.ips ? r.ips.toFixed(1) : "-", "data-v": r.ips ?? "" }));
      tr.rowData = r;
      tr.addEventListener("click", () => toggleDetail(tr, r, cols));
      body.append(tr);
    }
    head.querySelectorAll("th").forEach((th, i) => th.addEventListener("click", () => sortBy(table, th, i, cols)));
    const legend = el("p", { class: "legend" }, cols.map((c) => [el("b", { text: c.label }), ": " + describe(c)
      .split("; ").slice(1).join(", ") + ". "]));
    box.append(table, legend);
    document.body.append(box);
    sections.push(box);
    const ranked = cols.filter((c) => c.key in best);
    const first = ranked.find((c) => c.label === data.rank_first[sec.stage]) || ranked[0];
    if (first) {
      const idx = 1 + cols.indexOf(first);
      sortBy(table, head.children[idx], idx, cols, first.higher ? "desc" : "asc");
    }
  }

  function cellValue(tr, index) {
    if (index === 0) return tr.dataset.label;
    const raw = tr.children[index].dataset.v;
    return raw === "" || raw === undefined ? null : Number(raw);
  }

  function sortBy(table, th, index, cols, forced) {
    const col = cols[index - 1];
    const natural = col && col.higher === false ? "asc" : index === 0 ? "asc" : "desc";
    const dir = forced || (th.classList.contains("sorted-" + natural) ? (natural === "asc" ? "desc" : "asc") : natural);
    table.querySelectorAll("th").forEach((h) => h.classList.remove("sorted-asc", "sorted-desc"));
    th.classList.add("sorted-" + dir);
    const body = table.tBodies[0];
    const rows = [...body.querySelectorAll("tr.row")];
    rows.forEach((tr) => tr.detail && tr.detail.remove());
    rows.sort((a, b) => {
      const x = cellValue(a, index), y = cellValue(b, index);
      if (x === null && y === null) return 0;
      if (x === null) return 1;  // missing values last, whichever the direction
      if (y === null) return -1;
      const order = typeof x === "string" ? x.localeCompare(y) : x - y;
      return dir === "asc" ? order : -order;
    });
    rows.forEach((tr) => { body.append(tr); if (tr.detail) body.append(tr.detail); });
  }

  function toggleDetail(tr, r, cols) {
    if (tr.detail) { tr.detail.remove(); tr.detail = null; return; }
    const metrics = cols.filter((c) => r.per_image[c.key]);
    let content;
    if (!metrics.length) content = el("span", { text: "no per-image values (set metrics such as FID have none)" });
    else {
      const images = Object.keys(r.per_image[metrics[0].key]);
      content = el("table", { class: "perimage" },
        el("tr", {}, el("th", { text: "image" }), metrics.map((c) => el("th", { text: c.label }))),
        images.map((name) => el("tr", {}, el("td", { text: name }),
          metrics.map((c) => el("td", { text: fmt(r.per_image[c.key][name], c) })))));
    }
    tr.detail = el("tr", { class: "detail" }, el("td", { colspan: tr.children.length }, content));
    tr.after(tr.detail);
  }

  function applyFilter() {
    const terms = filter.value.toLowerCase().split(/[\s,]+/).filter(Boolean);
    const test = testSelect.value;
    for (const box of sections) {
      box.classList.toggle("hidden", Boolean(test) && box.dataset.test !== test);
      for (const tr of box.querySelectorAll("tr.row")) {
        const show = !terms.length || terms.some((t) => tr.dataset.label.includes(t));
        tr.classList.toggle("hidden", !show);
        if (tr.detail) tr.detail.classList.toggle("hidden", !show);
      }
    }
  }

  // -- image comparison --------------------------------------------------------------------------------
  const withPictures = data.sections.filter((s) => s.rows.some((r) => r.pictures));
  const compare = el("section", { id: "compare" }, el("h2", { text: "Compare images at native pixels" }));
  document.body.append(compare);
  if (!withPictures.length) compare.append(el("p", { class: "sub", text: "This run saved no pictures." }));
  else {
    const secSelect = el("select", { id: "cmp-section" },
      withPictures.map((s) => el("option", { value: s.id, text: `${s.stage}: ${s.test_set} x${s.scale}` })));
    const imgSelect = el("select", { id: "cmp-image" });
    const zoom = el("select", { id: "cmp-zoom" }, [1, 2, 4, 8].map((z) => el("option", { value: z, text: z + "x" })));
    const rowsBox = el("div", { class: "rows", id: "cmp-rows" });
    const panels = el("div", { class: "panels", id: "cmp-panels" });
    compare.append(el("div", { class: "controls" }, el("label", {}, "section ", secSelect),
      el("label", {}, "image ", imgSelect), el("label", {}, "zoom ", zoom)), rowsBox, panels);
    const current = () => withPictures.find((s) => s.id === secSelect.value);
    function fillSection() {
      const sec = current();
      const rows = sec.rows.filter((r) => r.pictures);
      imgSelect.replaceChildren(...rows[0].pictures.images.map((n) => el("option", { value: n, text: n })));
      rowsBox.replaceChildren(...rows.map((r, i) => el("label", {},
        el("input", { type: "checkbox", value: i, checked: i < 2, onchange: drawPanels }), " " + r.label +
        (r.order && sec.stage === "pipeline" ? ` (${r.order})` : ""))));
      drawPanels();
    }
    function panel(caption, src) {
      const img = el("img", { src, alt: caption, loading: "lazy" });
      img.addEventListener("load", () => { img.style.width = img.naturalWidth * Number(zoom.value) + "px"; });
      const view = el("div", { class: "view" }, img);
      view.addEventListener("scroll", () => syncScroll(view));
      return el("div", { class: "panel" }, el("div", { class: "cap", title: caption, text: caption }), view);
    }
    function drawPanels() {
      const sec = current();
      const rows = sec.rows.filter((r) => r.pictures);
      const name = imgSelect.value;
      const chosen = [...rowsBox.querySelectorAll("input:checked")].map((box) => rows[Number(box.value)]);
      const p = rows[0].pictures;
      panels.replaceChildren(panel("gray input (LR)", `${p.input}/${name}`),
        ...chosen.map((r) => panel(r.label, `${r.pictures.out}/${name}`)), panel("ground truth", `${p.truth}/${name}`));
    }
    function syncScroll(source) {
      for (const view of panels.querySelectorAll(".view")) {
        if (view === source) continue;
        const fx = source.scrollLeft / Math.max(1, source.scrollWidth - source.clientWidth);
        const fy = source.scrollTop / Math.max(1, source.scrollHeight - source.clientHeight);
        view.scrollLeft = fx * (view.scrollWidth - view.clientWidth);
        view.scrollTop = fy * (view.scrollHeight - view.clientHeight);
      }
    }
    secSelect.addEventListener("change", fillSection);
    imgSelect.addEventListener("change", drawPanels);
    zoom.addEventListener("change", () => panels.querySelectorAll("img").forEach((img) => {
      img.style.width = img.naturalWidth * Number(zoom.value) + "px";
    }));
    fillSection();
  }

  // -- curves and notes --------------------------------------------------------------------------------
  const notes = el("section", { id: "notes" }, el("h2", { text: "Training curves and notes" }));
  for (const src of data.curves) notes.append(el("p", { class: "curves" }, el("img", { src, alt: "loss curves", loading: "lazy" })));
  notes.append(el("div", { class: "notes", text: data.notes.join("\n") }));
  document.body.append(notes);
})();
