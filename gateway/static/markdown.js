// A small, safe Markdown renderer for the tutor's answers.
//
// It builds DOM nodes and sets only textContent and vetted attributes; no HTML string is ever parsed, so
// nothing a model writes can inject markup or script. It covers what answers use: paragraphs, headings,
// lists, block quotes, tables, rules, fenced code, inline code, bold, italic and links. Half-written
// syntax (an answer still streaming) renders as plain text until it closes.
//
// Every character keeps its offset in the source, so spans given as offsets into the answer (citations)
// are wrapped in <mark> wherever they fall, and a reference node is placed right after each span.

import { el } from './dom.js';

const FENCE = /^ {0,3}(`{3,}|~{3,})\s*([\w+#.-]*)/;
const HEADING = /^ {0,3}(#{1,6})[ \t]+(.*?)[ \t#]*$/d;
const RULE = /^ {0,3}([-*_])([ \t]*\1){2,}[ \t]*$/;
const QUOTE = /^ {0,3}> ?/;
const ITEM = /^( {0,3})([-*+]|\d{1,9}[.)])([ \t]+|$)/;
const TABLE_DIVIDER = /^ *\|?( *:?-+:? *\|)+( *:?-+:? *)?$/;
const ESCAPABLE = /[\\`*_[\]()#+\-.!>|~{}]/;
const SAFE_PROTOCOLS = new Set(['http:', 'https:', 'mailto:']);

/** A piece of the source: its text and, for each character, its offset in the whole source. */
class Slice {
  constructor(text, offsets) {
    this.text = text;
    this.offsets = offsets;
  }
  static of(text) {
    return new Slice(text, Array.from({ length: text.length + 1 }, (_, i) => i));
  }
  lines() {
    const out = [];
    let start = 0;
    for (;;) {
      const end = this.text.indexOf('\n', start);
      const stop = end === -1 ? this.text.length : end;
      out.push(this.cut(start, stop));
      if (end === -1) return out;
      start = end + 1;
    }
  }
  cut(start, end = this.text.length) {
    return new Slice(this.text.slice(start, end), this.offsets.slice(start, end + 1));
  }
  static join(slices) {
    let text = '';
    const offsets = [];
    slices.forEach((s, i) => {
      if (i) text += '\n';
      text += s.text;
      offsets.push(...s.offsets.slice(0, s.text.length), s.offsets[s.text.length]);
    });
    if (!slices.length) offsets.push(0);
    return new Slice(text, offsets);
  }
}

/** Marks the cited spans inside text nodes. `marks`: [{start, end, title, ref: () => Node}]. */
class Marker {
  constructor(marks) {
    this.marks = marks.filter((m) => m.end > m.start);
    this.placed = new Set();
  }
  emit(parent, slice, start = 0, end = slice.text.length) {
    let runStart = start;
    let runMarks = null;
    const flush = (stop) => {
      if (stop <= runStart) return;
      const text = document.createTextNode(slice.text.slice(runStart, stop));
      if (runMarks.length) {
        const mark = document.createElement('mark');
        mark.className = 'cited';
        mark.title = runMarks.map((m) => m.title).join('; ');
        mark.append(text);
        parent.append(mark);
      } else {
        parent.append(text);
      }
      const reached = slice.offsets[stop - 1] + 1;
      for (const m of this.marks) {
        if (!this.placed.has(m) && m.end <= reached) {
          this.placed.add(m);
          parent.append(m.ref());
        }
      }
    };
    for (let i = start; i < end; i++) {
      const at = slice.offsets[i];
      const covering = this.marks.filter((m) => m.start <= at && at < m.end);
      if (runMarks === null) runMarks = covering;
      else if (!sameMarks(covering, runMarks)) {
        flush(i);
        runStart = i;
        runMarks = covering;
      }
    }
    if (runMarks !== null) flush(end);
  }
  /** References of spans that ended inside markup (never reached by text) go at the end. */
  finish(parent) {
    for (const m of this.marks) if (!this.placed.has(m)) parent.append(m.ref());
  }
}

function sameMarks(a, b) {
  return a.length === b.length && a.every((m, i) => m === b[i]);
}

/** A link target we are willing to follow: http(s), mailto or a relative address; never script. */
export function safeHref(raw, base = document.baseURI) {
  const href = raw.replace(/[\u0000-\u001F\u007F\s]+/g, '');
  try {
    const url = new URL(href, base);
    return SAFE_PROTOCOLS.has(url.protocol) ? url.href : null;
  } catch {
    return null;
  }
}

/** Renders `source` into a DocumentFragment; `marks` use offsets into `source` (UTF-16 code units). */
export function renderMarkdown(source, marks = []) {
  const fragment = document.createDocumentFragment();
  const marker = new Marker(marks);
  renderBlocks(fragment, Slice.of(source).lines(), marker);
  const last = fragment.lastElementChild;
  marker.finish(last && /^(P|H\d)$/.test(last.tagName) ? last : fragment);
  return fragment;
}

function startsBlock(line, next) {
  const text = line.text;
  return (
    FENCE.test(text) ||
    HEADING.test(text) ||
    RULE.test(text) ||
    QUOTE.test(text) ||
    ITEM.test(text) ||
    (text.includes('|') && next !== undefined && TABLE_DIVIDER.test(next.text))
  );
}

function renderBlocks(parent, lines, marker) {
  let i = 0;
  while (i < lines.length) {
    const line = lines[i];
    const text = line.text;
    let m;
    if (!text.trim()) {
      i += 1;
    } else if ((m = FENCE.exec(text))) {
      const fence = m[1];
      const body = [];
      i += 1;
      while (i < lines.length && !lines[i].text.trimStart().startsWith(fence)) body.push(lines[i++]);
      i += 1; // the closing fence (absent while the answer is still streaming)
      const pre = el('pre');
      const code = el('code');
      if (m[2]) code.dataset.lang = m[2];
      marker.emit(code, Slice.join(body));
      pre.append(code);
      parent.append(pre);
    } else if ((m = HEADING.exec(text))) {
      const level = Math.min(6, m[1].length + 2); // answers sit inside a page: h1 becomes h3
      const heading = el(`h${level}`);
      const [start, end] = m.indices[2];
      renderInline(heading, line.cut(start, end), marker);
      parent.append(heading);
      i += 1;
    } else if (RULE.test(text)) {
      parent.append(el('hr'));
      i += 1;
    } else if (QUOTE.test(text)) {
      const body = [];
      while (i < lines.length && QUOTE.test(lines[i].text)) {
        body.push(lines[i].cut(QUOTE.exec(lines[i].text)[0].length));
        i += 1;
      }
      const quote = el('blockquote');
      renderBlocks(quote, body, marker);
      parent.append(quote);
    } else if ((m = ITEM.exec(text))) {
      i = renderList(parent, lines, i, marker);
    } else if (text.includes('|') && i + 1 < lines.length && TABLE_DIVIDER.test(lines[i + 1].text)) {
      i = renderTable(parent, lines, i, marker);
    } else {
      const body = [line];
      i += 1;
      while (i < lines.length && lines[i].text.trim() && !startsBlock(lines[i], lines[i + 1])) body.push(lines[i++]);
      const paragraph = el('p');
      const joined = Slice.join(body.map((l) => trimSlice(l)));
      renderInline(paragraph, joined, marker);
      parent.append(paragraph);
    }
  }
}

function trimSlice(slice) {
  const start = slice.text.length - slice.text.trimStart().length;
  const end = slice.text.trimEnd().length;
  return slice.cut(start, Math.max(start, end));
}

function renderList(parent, lines, i, marker) {
  const first = ITEM.exec(lines[i].text);
  const ordered = /\d/.test(first[2]);
  const list = el(ordered ? 'ol' : 'ul');
  if (ordered && parseInt(first[2], 10) !== 1) list.start = parseInt(first[2], 10);
  while (i < lines.length) {
    const m = ITEM.exec(lines[i].text);
    if (!m || /\d/.test(m[2]) !== ordered || m[1].length > first[1].length) break;
    const indent = m[0].length;
    const body = [lines[i].cut(indent)];
    i += 1;
    // The item goes on while lines are indented under it, or are lazy continuations of its text.
    while (i < lines.length) {
      const text = lines[i].text;
      const lead = text.length - text.trimStart().length;
      if (!text.trim()) {
        const next = lines[i + 1];
        if (next && next.text.trim() && next.text.length - next.text.trimStart().length >= 2) {
          body.push(lines[i++]);
          continue;
        }
        break;
      }
      if (lead >= 2) body.push(lines[i++].cut(Math.min(lead, indent)));
      else if (!startsBlock(lines[i], lines[i + 1])) body.push(lines[i++]);
      else break;
    }
    const item = el('li');
    renderBlocks(item, body, marker);
    list.append(item);
    while (i < lines.length && !lines[i].text.trim() && lines[i + 1] && ITEM.test(lines[i + 1].text)) i += 1;
  }
  parent.append(list);
  return i;
}

function tableCells(slice) {
  const cells = [];
  let start = 0;
  const text = slice.text;
  for (let k = 0; k <= text.length; k++) {
    if (k === text.length || (text[k] === '|' && text[k - 1] !== '\\')) {
      cells.push(trimSlice(slice.cut(start, k)));
      start = k + 1;
    }
  }
  if (text.trimStart().startsWith('|')) cells.shift();
  if (text.trimEnd().endsWith('|')) cells.pop();
  return cells;
}

function renderTable(parent, lines, i, marker) {
  const wrap = el('div', 'table-scroll');
  const table = el('table');
  const head = el('thead');
  const headRow = el('tr');
  for (const cell of tableCells(lines[i])) {
    const th = el('th');
    renderInline(th, cell, marker);
    headRow.append(th);
  }
  head.append(headRow);
  const body = el('tbody');
  i += 2;
  while (i < lines.length && lines[i].text.includes('|') && lines[i].text.trim()) {
    const row = el('tr');
    for (const cell of tableCells(lines[i])) {
      const td = el('td');
      renderInline(td, cell, marker);
      row.append(td);
    }
    body.append(row);
    i += 1;
  }
  table.append(head, body);
  wrap.append(table);
  parent.append(wrap);
  return i;
}

function renderInline(parent, slice, marker, start = 0, end = slice.text.length) {
  const text = slice.text;
  let plain = start;
  const flush = (stop) => marker.emit(parent, slice, plain, stop);
  let k = start;
  while (k < end) {
    const c = text[k];
    if (c === '\\' && k + 1 < end && ESCAPABLE.test(text[k + 1])) {
      flush(k);
      marker.emit(parent, slice, k + 1, k + 2);
      k += 2;
      plain = k;
    } else if (c === '`') {
      let n = 1;
      while (text[k + n] === '`') n += 1;
      const ticks = '`'.repeat(n);
      let close = text.indexOf(ticks, k + n);
      while (close !== -1 && close < end && text[close + n] === '`') close = text.indexOf(ticks, close + n + 1);
      if (close === -1 || close + n > end) {
        k += n;
        continue;
      }
      flush(k);
      const code = el('code');
      marker.emit(code, slice, k + n, close);
      parent.append(code);
      k = close + n;
      plain = k;
    } else if (c === '*' || c === '_') {
      let n = 1;
      while (text[k + n] === c && n < 3) n += 1;
      const run = c.repeat(n);
      const close = findClosing(text, run, k + n, end);
      const wordInside = c === '_' && /\w/.test(text[k - 1] ?? '');
      if (close === -1 || wordInside || /\s/.test(text[k + n] ?? ' ')) {
        k += n;
        continue;
      }
      flush(k);
      let node = el(n === 1 ? 'em' : 'strong');
      const outer = node;
      if (n === 3) node = node.appendChild(el('em'));
      renderInline(node, slice, marker, k + n, close);
      parent.append(outer);
      k = close + n;
      plain = k;
    } else if (c === '[') {
      const link = parseLink(text, k, end);
      if (!link) {
        k += 1;
        continue;
      }
      flush(k);
      const href = safeHref(link.href);
      const node = href ? el('a') : el('span');
      if (href) {
        node.href = href;
        node.rel = 'noopener noreferrer';
        node.target = '_blank';
      }
      renderInline(node, slice, marker, k + 1, link.labelEnd);
      parent.append(node);
      k = link.end;
      plain = k;
    } else {
      k += 1;
    }
  }
  flush(end);
}

function findClosing(text, run, from, end) {
  let at = text.indexOf(run, from);
  while (at !== -1 && at + run.length <= end) {
    const before = text[at - 1];
    const after = text[at + run.length];
    if (at > from && !/\s/.test(before) && after !== run[0]) return at;
    at = text.indexOf(run, at + 1);
  }
  return -1;
}

function parseLink(text, open, end) {
  const labelEnd = text.indexOf(']', open + 1);
  if (labelEnd === -1 || labelEnd + 1 >= end || text[labelEnd + 1] !== '(' || labelEnd === open + 1) return null;
  const close = text.indexOf(')', labelEnd + 2);
  if (close === -1 || close >= end) return null;
  const href = text.slice(labelEnd + 2, close).trim().split(/\s+/)[0];
  return href ? { labelEnd, href, end: close + 1 } : null;
}
