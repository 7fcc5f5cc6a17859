"use strict";
// The report's only script: switches views, and draws the drill-down tables from the data blocks
// embedded in the page (gzip + base64), unpacking a block the first time it is needed. Every text
// from a run goes into the page through textContent, never as markup.
(function () {
  const PAGE = 25;
  const meta = JSON.parse(document.getElementById("report-meta").textContent);

  // ---- views -------------------------------------------------------------------------------------
  const views = Array.from(document.querySelectorAll("section.view"));
  const links = Array.from(document.querySelectorAll("#nav a"));
  function show() {
    const wanted = decodeURIComponent(location.hash.slice(1)) || "overview";
    const view = views.find((v) => v.id === wanted) || views[0];
    views.forEach((v) => v.classList.toggle("active", v === view));
    links.forEach((a) => a.classList.toggle("active", a.getAttribute("href") === "#" + view.id));
    view.querySelectorAll(".drill").forEach(startDrill);
  }
  window.addEventListener("hashchange", show);

  // ---- helpers -----------------------------------------------------------------------------------
  function el(tag, cls, text) {
    const node = document.createElement(tag);
    if (cls) node.className = cls;
    if (text !== undefined && text !== null) node.textContent = String(text);
    return node;
  }
  function num(v) {
    if (v === null || v === undefined) return "–";
    if (typeof v === "boolean") return v ? "1" : "0";
    if (typeof v !== "number") return String(v);
    const a = Math.abs(v);
    if (a !== 0 && (a >= 1e5 || a < 1e-3)) return v.toPrecision(3);
    return a >= 100 ? v.toFixed(1) : a >= 10 ? v.toFixed(2) : v.toFixed(4);
  }
  function asNumber(v) {
    if (typeof v === "boolean") return v ? 1 : 0;
    return typeof v === "number" ? v : null;
  }
  function tail(text, n) {
    text = String(text || "").replace(/\s+/g, " ").trim();
    return text.length > n ? "…" + text.slice(text.length - n) : text;
  }
  function head(text, n) {
    text = String(text || "").replace(/\s+/g, " ").trim();
    return text.length > n ? text.slice(0, n) + "…" : text;
  }
  function option(select, value, label) {
    const o = el("option", null, label);
    o.value = value;
    select.appendChild(o);
    return o;
  }
  function labelled(text, control) {
    const label = el("label", null, text);
    label.appendChild(control);
    return label;
  }
  function leaves(value, out) {  // every string and number inside a JSON value, for searching
    if (value === null || value === undefined) return out;
    if (typeof value === "object") Object.values(value).forEach((v) => leaves(v, out));
    else out.push(String(value));
    return out;
  }
  function pre(text) {
    return el("pre", "text", text);
  }

  // ---- data blocks -------------------------------------------------------------------------------
  const unpacked = new Map();
  function base64Bytes(text) {
    if (Uint8Array.fromBase64) return Uint8Array.fromBase64(text);
    const bin = atob(text);
    const bytes = new Uint8Array(bin.length);
    for (let i = 0; i < bin.length; i++) bytes[i] = bin.charCodeAt(i);
    return bytes;
  }
  function parsed() {  // the data blocks follow this script: wait for the parser to reach them
    if (document.readyState !== "loading") return Promise.resolve();
    return new Promise((resolve) => document.addEventListener("DOMContentLoaded", resolve, { once: true }));
  }
  function unpack(id) {
    if (!unpacked.has(id)) {
      unpacked.set(id, (async () => {
        await parsed();
        const node = document.getElementById(id);
        if (!node) throw new Error("data block " + id + " is missing from the page");
        if (typeof DecompressionStream === "undefined") throw new Error("this browser cannot unpack the samples");
        const stream = new Blob([base64Bytes(node.textContent.trim())]).stream()
          .pipeThrough(new DecompressionStream("gzip"));
        return JSON.parse(await new Response(stream).text());
      })());
    }
    return unpacked.get(id);
  }

  function drawPager(view, pages) {  // previous / next buttons of a paged list (view has page, draw, pager)
    const prev = el("button", null, "‹ previous"), next = el("button", null, "next ›");
    prev.disabled = view.page === 0;
    next.disabled = view.page >= pages - 1;
    prev.addEventListener("click", () => { view.page -= 1; view.draw(); });
    next.addEventListener("click", () => { view.page += 1; view.draw(); });
    view.pager.replaceChildren(prev, el("span", "status", `page ${view.page + 1} of ${pages}`), next);
  }

  function startDrill(box) {
    if (box.dataset.started) return;
    box.dataset.started = "1";
    const status = el("div", "status", "unpacking the samples…");
    box.appendChild(status);
    const load = box.dataset.task !== undefined ? loadTask(box.dataset.task) : loadPairs(box.dataset.pairs);
    load.then((state) => { status.remove(); state.mount(box); })
      .catch((err) => { status.textContent = "cannot show the samples: " + err.message; });
  }

  // ---- one task's samples ------------------------------------------------------------------------
  async function loadTask(key) {
    const info = meta.tasks[key];
    const names = Object.keys(info.by);
    const [shared, ...blocks] = await Promise.all([unpack(info.shared), ...names.map((n) => unpack(info.by[n]))]);
    const rows = {};
    names.forEach((n, i) => { rows[n] = blocks[i].rows; });
    return new TaskDrill(key, info, shared, names, rows);
  }

  class TaskDrill {
    constructor(key, info, shared, names, rows) {
      Object.assign(this, { key, info, shared, names, rows });
      this.docs = shared.docs;
      this.a = names[0];
      this.b = names[1] || names[0];
      this.score = info.primary;
      this.filter = "all";
      this.sort = "doc";
      this.query = "";
      this.page = 0;
      this.hay = null;
    }

    text(index) {
      return index === undefined || index === null ? "" : this.shared.strings[index];
    }

    promptOf(doc) {
      const first = doc.req.find((r) => r.k !== "score");
      if (!first) return "";
      const body = first.c !== undefined ? this.text(first.c) : first.t !== undefined ? this.text(first.t) : "";
      return body || first.x || "";
    }

    outputOf(doc, resp) {
      if (!resp) return "(not run)";
      const [responses] = resp;
      let best = null;
      for (let i = 0; i < doc.req.length; i++) {
        const r = doc.req[i];
        if (r.k === "gen") return (responses[i] || [])[0] || "";
        if (r.k === "roll") return "log-likelihood " + num(responses[i][0]) + " over " + responses[i][1] + " tokens";
        if (r.k === "ll" && (best === null || responses[i][0] > best[0])) best = [responses[i][0], r.x];
      }
      return best ? "likeliest: " + best[1] : "";
    }

    scoreOf(name, i) {
      const row = this.rows[name][i];
      return row && this.score ? asNumber(row[1][this.score]) : null;
    }

    haystack() {
      if (!this.hay) {
        this.hay = this.docs.map((doc, i) => {
          const parts = leaves(doc.doc, [String(doc.id)]);
          doc.req.forEach((r) => parts.push(this.text(r.c), this.text(r.t), r.x || ""));
          this.names.forEach((n) => { const row = this.rows[n][i]; if (row) leaves(row[0], parts); });
          return parts.join("\n").toLowerCase();
        });
      }
      return this.hay;
    }

    selected() {
      let picked = this.docs.map((_, i) => i);
      const terms = this.query.toLowerCase().split(/\s+/).filter(Boolean);
      if (terms.length) {
        const hay = this.haystack();
        picked = picked.filter((i) => terms.every((t) => hay[i].includes(t)));
      }
      const delta = (i) => {
        const a = this.scoreOf(this.a, i), b = this.scoreOf(this.b, i);
        return a === null || b === null ? null : b - a;
      };
      if (this.filter !== "all") {
        picked = picked.filter((i) => {
          const d = delta(i);
          if (d === null) return false;
          return this.filter === "higher" ? d > 0 : this.filter === "lower" ? d < 0 : d !== 0;
        });
      }
      if (this.sort !== "doc") {
        const sign = this.sort === "up" ? 1 : -1;
        picked.sort((x, y) => {
          const dx = delta(x), dy = delta(y);
          if (dx === null) return 1;
          if (dy === null) return -1;
          return sign * (dx - dy);
        });
      }
      return picked;
    }

    mount(box) {
      this.box = box;
      const controls = el("div", "controls");
      const search = el("input");
      search.type = "search";
      search.placeholder = "search prompts, outputs, references, ids…";
      search.setAttribute("aria-label", "search samples");
      let timer = null;
      search.addEventListener("input", () => {
        clearTimeout(timer);
        timer = setTimeout(() => { this.query = search.value; this.page = 0; this.draw(); }, 150);
      });
      controls.appendChild(search);
      const pick = (label, current, set) => {
        const select = el("select");
        this.names.forEach((n) => option(select, n, n));
        select.value = current;
        select.addEventListener("change", () => { set(select.value); this.page = 0; this.draw(); });
        controls.appendChild(labelled(label, select));
        return select;
      };
      pick("A", this.a, (v) => { this.a = v; });
      pick("B", this.b, (v) => { this.b = v; });
      if (this.info.scores.length) {
        const score = el("select");
        this.info.scores.forEach((k) => {
          const better = this.info.better[k];
          option(score, k, k + (better === undefined ? "" : better ? " (higher is better)" : " (lower is better)"));
        });
        score.value = this.score;
        score.addEventListener("change", () => { this.score = score.value; this.page = 0; this.draw(); });
        controls.appendChild(labelled("score", score));
        const filter = el("select");
        [["all", "all documents"], ["lower", "B lower than A"], ["higher", "B higher than A"],
         ["differ", "A and B differ"]].forEach(([v, l]) => option(filter, v, l));
        filter.addEventListener("change", () => { this.filter = filter.value; this.page = 0; this.draw(); });
        controls.appendChild(labelled("show", filter));
        const sort = el("select");
        [["doc", "document order"], ["up", "B − A, smallest first"], ["down", "B − A, largest first"]]
          .forEach(([v, l]) => option(sort, v, l));
        sort.addEventListener("change", () => { this.sort = sort.value; this.page = 0; this.draw(); });
        controls.appendChild(labelled("order", sort));
      }
      box.appendChild(controls);
      this.status = el("div", "status");
      this.list = el("div", "list");
      this.pager = el("div", "pager");
      box.append(this.status, this.list, this.pager);
      this.draw();
    }

    draw() {
      const picked = this.selected();
      const pages = Math.max(1, Math.ceil(picked.length / PAGE));
      this.page = Math.min(this.page, pages - 1);
      const shown = picked.slice(this.page * PAGE, (this.page + 1) * PAGE);
      this.status.textContent = picked.length
        ? `documents ${this.page * PAGE + 1}–${this.page * PAGE + shown.length} of ${picked.length} shown` +
          (picked.length < this.docs.length ? ` (${this.docs.length} in all)` : "")
        : `no document matches (${this.docs.length} in all)`;
      this.list.replaceChildren(this.headRow(), ...shown.map((i) => this.row(i)));
      drawPager(this, pages);
    }

    headRow() {
      const row = el("div", "row head");
      row.append(el("div", null, "id"), el("div", null, "prompt"), el("div", null, "A: " + this.a),
        el("div", null, "B: " + this.b));
      return row;
    }

    side(name, i) {
      const doc = this.docs[i];
      const cell = el("div", "cell");
      const value = this.scoreOf(name, i);
      if (this.score) cell.appendChild(el("span", "score", this.score + " " + num(value) + " · "));
      cell.appendChild(el("span", "out", head(this.outputOf(doc, this.rows[name][i]), 160)));
      return cell;
    }

    row(i) {
      const doc = this.docs[i];
      const row = el("div", "row sample");
      row.dataset.doc = String(doc.id);
      row.append(el("div", "id", doc.id), el("div", "cell prompt", tail(this.promptOf(doc), 160)),
        this.side(this.a, i), this.side(this.b, i));
      row.addEventListener("click", (event) => {
        if (event.target.closest(".detail")) return;
        const open = row.querySelector(".detail");
        if (open) open.remove(); else row.appendChild(this.detail(i));
      });
      return row;
    }

    detail(i) {
      const doc = this.docs[i];
      const box = el("div", "detail");
      box.appendChild(el("h5", null, "prompt"));
      if (this.shared.prefix) {
        const more = el("details");
        more.append(el("summary", null, `the prompt start every document shares (${this.shared.prefix.length} characters)`),
          pre(this.shared.prefix));
        box.appendChild(more);
      }
      const seen = new Set();
      doc.req.forEach((r) => {
        const index = r.c !== undefined ? r.c : r.t;
        if (index !== undefined && !seen.has(index)) { seen.add(index); box.appendChild(pre(this.text(index))); }
      });
      box.appendChild(this.responses(i));
      box.appendChild(el("h5", null, "document (references and labels)"));
      box.appendChild(this.docTable(doc));
      box.appendChild(el("h5", null, "scores"));
      box.appendChild(this.scoreTable(i));
      return box;
    }

    responses(i) {
      const doc = this.docs[i];
      const wrap = el("div");
      const likelihoods = doc.req.map((r, j) => [r, j]).filter(([r]) => r.k === "ll");
      if (likelihoods.length) wrap.appendChild(this.likelihoodTable(i, likelihoods));
      const pair = el("div", "pair");
      [this.a, this.b].forEach((name) => {
        const col = el("div");
        col.appendChild(el("h5", null, name));
        const resp = this.rows[name][i];
        if (!resp) { col.appendChild(el("p", "hint", "not run on this document")); pair.appendChild(col); return; }
        const responses = resp[0];
        const scores = doc.req.map((r, j) => [r, j]).filter(([r]) => r.k === "score").map(([, j]) => responses[j]);
        let scored = 0;
        doc.req.forEach((r, j) => {
          if (r.k === "gen") {
            const texts = responses[j] || [];
            col.appendChild(el("div", "hint", `generation (${texts.length} sample${texts.length === 1 ? "" : "s"}, ` +
              `temperature ${r.o.temperature}, at most ${r.o.max_tokens} tokens)`));
            texts.forEach((t) => {
              const box = pre(t);
              col.appendChild(box);
              if (scored < scores.length) {
                col.appendChild(el("div", "hint", `${doc.req.find((q) => q.k === "score").s}: ${num(scores[scored])}`));
                scored += 1;
              }
            });
          } else if (r.k === "roll") {
            col.appendChild(el("div", null, `log-likelihood ${num(responses[j][0])} over ${responses[j][1]} tokens`));
          }
        });
        for (; scored < scores.length; scored++) col.appendChild(el("div", "hint", "score " + num(scores[scored])));
        pair.appendChild(col);
      });
      if (doc.req.some((r) => r.k !== "ll")) wrap.appendChild(pair);
      return wrap;
    }

    likelihoodTable(i, likelihoods) {
      const table = el("table", "grid");
      const headRow = el("tr");
      headRow.append(el("th", null, "continuation"), el("th", null, this.a + " log-likelihood"),
        el("th", null, this.b + " log-likelihood"));
      table.appendChild(headRow);
      const best = {};
      [this.a, this.b].forEach((n) => {
        const resp = this.rows[n][i];
        if (resp) best[n] = Math.max(...likelihoods.map(([, j]) => resp[0][j][0]));
      });
      likelihoods.forEach(([r, j]) => {
        const tr = el("tr");
        tr.appendChild(el("td", null, r.x));
        [this.a, this.b].forEach((n) => {
          const resp = this.rows[n][i];
          const v = resp ? resp[0][j][0] : null;
          tr.appendChild(el("td", "num" + (v !== null && v === best[n] ? " argmax" : ""), num(v)));
        });
        table.appendChild(tr);
      });
      return table;
    }

    docTable(doc) {
      const table = el("table", "grid");
      Object.entries(doc.doc).forEach(([k, v]) => {
        const tr = el("tr");
        const value = typeof v === "string" ? v : JSON.stringify(v, null, 1);
        const td = el("td");
        td.appendChild(value.length > 120 ? pre(value) : document.createTextNode(value));
        tr.append(el("th", null, k), td);
        table.appendChild(tr);
      });
      (doc.omitted || []).forEach((k) => {
        const tr = el("tr");
        tr.append(el("th", null, k), el("td", "hint", "(shown in the prompt above)"));
        table.appendChild(tr);
      });
      return table;
    }

    scoreTable(i) {
      const table = el("table", "grid");
      const top = el("tr");
      top.appendChild(el("th", null, "score"));
      this.names.forEach((n) => top.appendChild(el("th", null, n)));
      table.appendChild(top);
      const keys = new Set();
      this.names.forEach((n) => { const r = this.rows[n][i]; if (r) Object.keys(r[1]).forEach((k) => keys.add(k)); });
      keys.forEach((k) => {
        const tr = el("tr");
        tr.appendChild(el("th", null, k));
        this.names.forEach((n) => {
          const r = this.rows[n][i];
          const v = r ? r[1][k] : null;
          tr.appendChild(el("td", typeof v === "number" ? "num" : null, typeof v === "string" ? head(v, 200) : num(v)));
        });
        table.appendChild(tr);
      });
      return table;
    }
  }

  // ---- judged pairs of a comparison --------------------------------------------------------------
  async function loadPairs(id) {
    const info = meta.pairs[id];
    if (!info) throw new Error("this comparison's judged pairs are not in the report");
    return new PairDrill(await unpack(info.block));
  }

  class PairDrill {
    constructor(pairs) {
      this.pairs = pairs;
      this.query = "";
      this.outcome = "all";
      this.page = 0;
    }

    mount(box) {
      const controls = el("div", "controls");
      const search = el("input");
      search.type = "search";
      search.placeholder = "search prompts and outputs…";
      search.setAttribute("aria-label", "search judged pairs");
      search.addEventListener("input", () => { this.query = search.value; this.page = 0; this.draw(); });
      const outcome = el("select");
      ["all", "win", "tie", "loss", "excluded"].forEach((v) => option(outcome, v, v));
      outcome.addEventListener("change", () => { this.outcome = outcome.value; this.page = 0; this.draw(); });
      controls.append(search, labelled("outcome", outcome));
      this.status = el("div", "status");
      this.list = el("div", "list");
      this.pager = el("div", "pager");
      box.append(el("h4", null, "Judged pairs"), controls, this.status, this.list, this.pager);
      this.draw();
    }

    draw() {
      const terms = this.query.toLowerCase().split(/\s+/).filter(Boolean);
      const picked = this.pairs.filter((p) => (this.outcome === "all" || p.outcome === this.outcome) &&
        terms.every((t) => [p.id, p.model, p.prompt, p.output, p.baseline].join("\n").toLowerCase().includes(t)));
      const pages = Math.max(1, Math.ceil(picked.length / PAGE));
      this.page = Math.min(this.page, pages - 1);
      const shown = picked.slice(this.page * PAGE, (this.page + 1) * PAGE);
      this.status.textContent = `${picked.length} of ${this.pairs.length} pairs`;
      const headRow = el("div", "row head");
      headRow.append(el("div", null, "prompt id"), el("div", null, "prompt"), el("div", null, "model output"),
        el("div", null, "preference"));
      this.list.replaceChildren(headRow, ...shown.map((p) => this.row(p)));
      drawPager(this, pages);
    }

    row(p) {
      const row = el("div", "row sample");
      row.dataset.doc = String(p.id);
      const verdict = el("div", "cell " + (p.outcome === "win" ? "better" : p.outcome === "loss" ? "worse" : ""),
        `${p.model}: ${p.outcome} (${num(p.preference)})`);
      row.append(el("div", "id", p.id), el("div", "cell", head(p.prompt, 160)), el("div", "cell", head(p.output, 160)),
        verdict);
      row.addEventListener("click", (event) => {
        if (event.target.closest(".detail")) return;
        const open = row.querySelector(".detail");
        if (open) { open.remove(); return; }
        const box = el("div", "detail");
        box.append(el("h5", null, "prompt"), pre(p.prompt));
        const pair = el("div", "pair");
        const mine = el("div"), theirs = el("div");
        mine.append(el("h5", null, p.model), pre(p.output));
        theirs.append(el("h5", null, "baseline"), pre(p.baseline));
        pair.append(mine, theirs);
        box.appendChild(pair);
        const orders = Object.entries(p.by_order || {}).map(([k, v]) => `${k}: ${num(v)}`).join(", ");
        box.appendChild(el("div", "hint", `P(${p.model} better) by order shown: ${orders || "–"}`));
        row.appendChild(box);
      });
      return row;
    }
  }

  show();
})();
