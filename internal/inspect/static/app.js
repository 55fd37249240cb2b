// The keyhole inspector's page: polls the JSON API of the same address.
'use strict';

const $ = (sel, root = document) => root.querySelector(sel);
let etag = '';
let selected = 0;      // id of the request shown
let shown = null;      // its detail, as last fetched
let replayed = null;   // the detail of its latest replay

function el(tag, attrs = {}, ...kids) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k === 'class') e.className = v; else e.setAttribute(k, v);
  }
  for (const k of kids) e.append(k);
  return e;
}

function size(n) {
  if (n < 1024) return n + ' B';
  if (n < 1 << 20) return (n / 1024).toFixed(1) + ' KiB';
  return (n / (1 << 20)).toFixed(1) + ' MiB';
}

function duration(r) {
  const ms = r.duration_ms;
  const s = ms < 1 ? ms.toFixed(2) + ' ms' : ms < 1000 ? ms.toFixed(1) + ' ms' : (ms / 1000).toFixed(2) + ' s';
  return r.done ? s : s + '…';
}

function statusText(r) {
  if (r.status) return String(r.status);
  return r.done ? 'failed' : '…';
}

// poll asks for the list, and once it has one, waits on the server for
// the next change (a long poll): a request shows up as soon as it is
// recorded. While a request shown is still under way it asks every
// 300 ms instead, so that its duration keeps counting. After a change it
// pauses a moment, so that a busy tunnel redraws the page a few times a
// second rather than on every request.
let underWay = false;  // a row shown is not done yet
async function poll() {
  const wait = etag && !underWay;
  let next = underWay ? 300 : 100;
  try {
    const res = await fetch(wait ? 'api/requests?wait=20' : 'api/requests',
      { headers: wait ? { 'If-None-Match': etag } : {} });
    $('#live').className = '';
    if (res.status === 200) {
      etag = res.headers.get('ETag') || '';
      const rows = await res.json();
      underWay = rows.some(r => !r.done);
      renderRows(rows);
      refreshTunnels();
      if (selected && shown && !(shown.done && (!replayed || replayed.done))) refreshDetail();
    } else if (res.status === 304) {
      next = 0;
    } else {
      next = 1000;
    }
  } catch (e) {
    $('#live').className = 'down';
    next = 1000;
  }
  setTimeout(poll, next);
}

async function refreshTunnels() {
  const res = await fetch('api/tunnels');
  const ts = await res.json();
  const ul = $('#tunnels');
  ul.replaceChildren(...ts.map(t => el('li', {}, el('b', {}, t.name), ' ', t.url || '(connecting)')));
}

function renderRows(rows) {
  $('#empty').hidden = rows.length > 0;
  const tb = $('#rows');
  tb.replaceChildren(...rows.map(r => {
    const tr = el('tr', { 'data-id': r.id },
      el('td', { class: 'num' }, String(r.id)),
      el('td', {}, new Date(r.start).toLocaleTimeString()),
      el('td', {}, r.tunnel),
      el('td', {}, r.websocket ? 'WS' : r.method),
      el('td', { class: 'path', title: r.path }, r.path + (r.replay_of ? '  (replay of #' + r.replay_of + ')' : '')),
      el('td', { class: 'status s' + String(r.status).charAt(0), title: r.error || '' }, statusText(r)),
      el('td', { class: 'num' }, duration(r)),
      el('td', { class: 'num' }, size(r.request_size)),
      el('td', { class: 'num' }, size(r.response_size)),
      el('td', {}, r.visitor || ''));
    if (r.id === selected) tr.classList.add('selected');
    tr.addEventListener('click', () => select(r.id));
    return tr;
  }));
}

async function fetchDetail(id) {
  const res = await fetch('api/requests/' + id);
  if (!res.ok) throw new Error((await res.json()).error);
  return res.json();
}

async function select(id) {
  selected = id;
  replayed = null;
  $('#editor').hidden = true;
  for (const tr of document.querySelectorAll('#rows tr')) tr.classList.toggle('selected', Number(tr.dataset.id) === id);
  await refreshDetail();
}

async function refreshDetail() {
  try {
    shown = await fetchDetail(selected);
    if (replayed && !replayed.done) replayed = await fetchDetail(replayed.id);
  } catch (e) {
    shown = null;
  }
  renderDetail();
}

function renderDetail() {
  $('#detail').hidden = !shown;
  if (!shown) return;
  $('#d-title').textContent = (shown.websocket ? 'WS' : shown.method) + ' ' + shown.path;
  $('#replay').hidden = $('#edit').hidden = shown.websocket;
  renderSide($('#original'), shown, 'as received (#' + shown.id + ')');
  $('#replayed').hidden = !replayed;
  if (replayed) renderSide($('#replayed'), replayed, replayed.error && !replayed.status ? 'replay failed' : 'replay (#' + replayed.id + ')');
}

function renderSide(root, d, title) {
  root.replaceChildren($('#side').content.cloneNode(true));
  $('.title', root).textContent = title;
  const meta = [d.tunnel, 'status ' + statusText(d), duration(d)];
  if (d.visitor) meta.push('from ' + d.visitor);
  if (d.error) meta.push(d.error);
  $('.meta', root).textContent = meta.join(' · ');
  $('.meta', root).dataset.status = d.status;
  renderHeaders($('.req-h', root), d.request_headers, d.host);
  renderHeaders($('.resp-h', root), d.response_headers);
  renderBody(root, '.req-b', d.request_body, header(d.request_headers, 'Content-Type'));
  renderBody(root, '.resp-b', d.response_body, header(d.response_headers, 'Content-Type'));
  if (d.websocket) {
    $('.msgs-wrap', root).hidden = false;
    $('.req-b-wrap', root).hidden = $('.resp-b-wrap', root).hidden = true;
    $('.msgs-info', root).textContent = '(' + d.message_count + ', the latest ' + (d.messages || []).length + ' kept)';
    $('.msgs', root).replaceChildren(...(d.messages || []).map(m => el('li', { class: m.from_service ? 'in' : 'out' },
      (m.from_service ? '↓ service: ' : '↑ visitor: ') + new Date(m.at).toLocaleTimeString() + ' ' + size(m.body.size) + '  ' + show(m.body, m.text ? 'text/plain' : ''))));
  }
}

function header(h, name) {
  if (!h) return '';
  for (const [k, v] of Object.entries(h)) if (k.toLowerCase() === name.toLowerCase()) return v[0];
  return '';
}

function renderHeaders(table, h, host) {
  const rows = [];
  if (host) rows.push(['Host', host]);
  for (const [k, vs] of Object.entries(h || {}).sort()) for (const v of vs) rows.push([k, v]);
  table.replaceChildren(...rows.map(([k, v]) => el('tr', {}, el('td', {}, k), el('td', {}, v))));
}

function renderBody(root, sel, b, type) {
  const info = $(sel + '-info', root);
  info.textContent = '(' + size(b.size) + (b.truncated ? ', the first ' + size(atob(b.base64 || '').length) + ' kept' : '') + ')';
  $(sel, root).textContent = b.size ? show(b, type) : '(empty)';
}

// show renders a captured body as pretty JSON, as text, or in hex.
function show(b, type) {
  if (b.text !== undefined && b.text !== null) {
    if (/json/i.test(type) || /^\s*[[{]/.test(b.text)) {
      try { return JSON.stringify(JSON.parse(b.text), null, 2); } catch (e) { /* not JSON after all */ }
    }
    return b.text;
  }
  return hex(atob(b.base64 || ''));
}

function hex(s) {
  const lines = [];
  for (let i = 0; i < s.length; i += 16) {
    const chunk = s.slice(i, i + 16);
    const hx = Array.from(chunk, c => c.charCodeAt(0).toString(16).padStart(2, '0')).join(' ');
    const asc = Array.from(chunk, c => (c >= ' ' && c <= '~') ? c : '.').join('');
    lines.push(i.toString(16).padStart(8, '0') + '  ' + hx.padEnd(48) + ' ' + asc);
  }
  return lines.join('\n');
}

async function replay(edits) {
  const res = await fetch('api/requests/' + shown.id + '/replay', {
    method: 'POST', headers: { 'Content-Type': 'application/json' }, body: edits ? JSON.stringify(edits) : '',
  });
  const out = await res.json();
  if (!res.ok) {
    replayed = { error: out.error, status: 0, done: true, request_headers: {}, response_headers: {},
      request_body: { size: 0 }, response_body: { size: 0 }, tunnel: shown.tunnel, duration_ms: 0 };
    if (out.id) replayed = out;
  } else {
    replayed = out;
  }
  renderDetail();
}

function openEditor() {
  const f = $('#editor');
  f.hidden = !f.hidden;
  if (f.hidden) return;
  $('#e-method').value = shown.method;
  $('#e-path').value = shown.path;
  const lines = ['Host: ' + shown.host];
  for (const [k, vs] of Object.entries(shown.request_headers || {})) for (const v of vs) lines.push(k + ': ' + v);
  $('#e-headers').value = lines.join('\n');
  $('#e-body').value = shown.request_body.text || '';
}

function editsFromForm() {
  const headers = {};
  for (const line of $('#e-headers').value.split('\n')) {
    const i = line.indexOf(':');
    if (i <= 0) continue;
    const k = line.slice(0, i).trim(), v = line.slice(i + 1).trim();
    (headers[k] = headers[k] || []).push(v);
  }
  const edits = { method: $('#e-method').value, path: $('#e-path').value, headers, body: $('#e-body').value };
  const binary = shown.request_body.text === undefined || shown.request_body.text === null;
  if (binary && !edits.body) delete edits.body; // keep the recorded bytes
  return edits;
}

$('#replay').addEventListener('click', () => replay(null));
$('#edit').addEventListener('click', openEditor);
$('#editor').addEventListener('submit', ev => { ev.preventDefault(); replay(editsFromForm()); });
poll();
