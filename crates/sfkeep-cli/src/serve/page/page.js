// sfkeep status page: draws /api/v1/status and /api/v1/events. Read-only (GET to its own
// origin only), builds the DOM with textContent (org data is never parsed as HTML), and
// shows no token.
'use strict';

const SVG = 'http://www.w3.org/2000/svg';
const state = { window: '24h', timer: null };

const LANES = [
  { id: 'refresh', title: 'refreshes', cats: ['refresh', 'adopted'] },
  { id: 'death', title: 'deaths · heals', cats: ['death', 'heal'] },
  { id: 'keep_alive', title: 'keep-alives', cats: ['keep_alive'] },
  { id: 'reauth', title: 're-auth · failures', cats: ['reauth', 'failure', 'fallback', 'store', 'probe', 'other'] },
  { id: 'api', title: 'API calls', cats: ['api'] },
  { id: 'alerts', title: 'alerts sent', cats: [] },
  { id: 'logins', title: 'LoginHistory', cats: [] },
  { id: 'usage', title: 'API usage', cats: [] },
];

function h(tag, attrs, ...kids) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === null || v === undefined) continue;
    if (k === 'class') e.className = v; else e.setAttribute(k, String(v));
  }
  for (const k of kids.flat()) {
    if (k === null || k === undefined || k === false) continue;
    e.append(k instanceof Node ? k : document.createTextNode(String(k)));
  }
  return e;
}

function s(tag, attrs, ...kids) {
  const e = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v !== null && v !== undefined) e.setAttribute(k, String(v));
  }
  for (const k of kids.flat()) {
    if (k === null || k === undefined) continue;
    e.append(k instanceof Node ? k : document.createTextNode(String(k)));
  }
  return e;
}

function dur(secs) {
  if (secs === null || secs === undefined) return '—';
  secs = Math.max(0, Math.floor(secs));
  const d = Math.floor(secs / 86400), hh = Math.floor((secs % 86400) / 3600);
  const m = Math.floor((secs % 3600) / 60), x = secs % 60;
  if (d > 0) return d + 'd ' + hh + 'h';
  if (hh > 0) return hh + 'h ' + String(m).padStart(2, '0') + 'm';
  if (m > 0) return m + 'm ' + String(x).padStart(2, '0') + 's';
  return x + 's';
}

function when(ms) {
  if (ms === null || ms === undefined) return '—';
  const t = new Date(ms);
  if (isNaN(t)) return '—';
  return t.toISOString().replace('T', ' ').replace(/\.\d+Z$/, ' UTC');
}

async function getJSON(url) {
  const r = await fetch(url, { credentials: 'same-origin', cache: 'no-store' });
  if (!r.ok) throw new Error(url + ' answered HTTP ' + r.status);
  return r.json();
}

function badge(stateName) {
  const cls = { fresh: 'ok', stale: 'ok', expired: 'warn', missing: 'warn', invalidated: 'warn', reauth_required: 'bad' }[stateName] || 'warn';
  return h('span', { class: 'badge ' + cls, 'data-state': stateName }, stateName.replace('_', ' '));
}

function forecastRow(f) {
  let what, cls = 'ok';
  if (f.status === 'dated') {
    what = when(f.at) + ' (' + dur(f.remaining_secs) + ' left)';
    if (f.remaining_secs < 3 * 86400) cls = 'bad'; else if (f.remaining_secs < 14 * 86400) cls = 'warn';
  } else if (f.status === 'count') {
    what = f.used + ' of ' + f.limit + ' in use';
    if (f.used + 1 >= f.limit) cls = f.used >= f.limit ? 'bad' : 'warn';
  } else if (f.status === 'clear') {
    what = 'nothing coming';
  } else {
    what = 'unknown: ' + f.why;
    cls = 'unknown';
  }
  const tr = h('tr', { class: cls, 'data-forecast-kind': f.kind, 'data-at': f.status === 'dated' ? f.at : null },
    h('th', { scope: 'row' }, f.title),
    h('td', {}, what));
  if (f.evidence && f.evidence.length) {
    tr.title = f.evidence.join('\n') + (f.fix ? '\nfix: ' + f.fix : '');
  }
  return tr;
}

function diagnosisBlock(p) {
  const d = p.diagnosis;
  if (!d) {
    return h('p', { class: 'note' }, 'No diagnosis yet: sfkeep doctor runs when a credential dies.');
  }
  const top = (d.diagnosis.causes || [])[0] || { evidence: [], fix: '' };
  return h('div', { class: 'diagnosis', 'data-verdict': d.diagnosis.verdict },
    h('div', {}, h('strong', {}, 'latest diagnosis: '), d.diagnosis.verdict.replace(/_/g, ' '),
      h('span', { class: 'dim' }, ' at ' + when(d.at) + ' (' + d.trigger.replace(/_/g, ' ') + ')')),
    h('ul', {}, top.evidence.slice(0, 5).map((e) => h('li', {}, e))),
    h('div', { class: 'fix' }, h('strong', {}, 'fix: '), top.fix));
}

function usageBar(p) {
  const u = p.api_usage;
  if (!u) {
    return h('div', { class: 'usage none' }, 'API usage: not read yet (' + (p.org.error_reading || 'no live token at the last org check') + ')');
  }
  const bar = h('div', { class: 'bar' }, h('div', { class: 'fill ' + (u.percent >= 95 ? 'bad' : u.percent >= 80 ? 'warn' : 'ok') }));
  bar.firstChild.style.width = Math.min(100, u.percent) + '%';
  return h('div', { class: 'usage' }, h('span', {}, 'API requests today: ' + u.used + ' of ' + u.max + ' (' + u.percent + ' %)'), bar);
}

function profileSection(p) {
  const sec = h('section', { class: 'profile', 'data-profile': p.name, id: 'p-' + p.name });
  const last = p.last_success ? when(p.last_success.at) + (p.last_success.source_ip ? ' from ' + p.last_success.source_ip : '') : 'never recorded';
  const facts = h('dl', { class: 'facts' },
    h('dt', {}, 'state'), h('dd', {}, badge(p.state), p.reauth_cause ? h('span', { class: 'dim' }, ' ' + p.reauth_cause) : null),
    h('dt', {}, 'expires in'), h('dd', { class: 'countdown', 'data-expires-in': p.expires_in_secs }, dur(p.expires_in_secs)),
    h('dt', {}, 'grant'), h('dd', {}, p.grant + (p.fallback_grant ? ' → ' + p.fallback_grant : '') + (p.primary_lost ? ' (fallback carrying: ' + p.primary_lost + ')' : '')),
    h('dt', {}, 'store'), h('dd', {}, p.store),
    h('dt', {}, 'generation'), h('dd', {}, p.generation === null ? '—' : p.generation),
    h('dt', {}, 'last successful call'), h('dd', {}, last),
    h('dt', {}, 'keep-alive'), h('dd', {}, p.keep_alive.enabled
      ? (p.keep_alive.plan ? 'next ' + when(p.keep_alive.plan.due_at) : (p.keep_alive.note || 'on')) + ' · ' + (p.keep_alive.refreshed + p.keep_alive.adopted) + ' done'
      : (p.keep_alive.note || 'off')));
  const incidents = (p.incidents || []).map((i) => h('li', { class: 'incident' }, i.summary));
  // Element.append would write a null as the text "null": leave the absent parts out.
  sec.append(...[
    h('h2', {}, p.name),
    h('div', { class: 'row' },
      facts,
      h('div', { class: 'right' },
        h('table', { class: 'forecasts' }, h('caption', {}, 'forecasts'), h('tbody', {}, (p.forecasts || []).map(forecastRow))),
        usageBar(p))),
    incidents.length ? h('ul', { class: 'incidents' }, incidents) : null,
    diagnosisBlock(p),
    h('div', { class: 'timeline', 'data-timeline': p.name }, h('p', { class: 'note' }, 'Loading the timeline…')),
    h('div', { class: 'patterns', 'data-patterns': p.name })].filter((n) => n !== null && n !== undefined));
  return sec;
}

function tip(node, text) {
  node.append(s('title', {}, text));
  node.setAttribute('tabindex', '0');
  node.setAttribute('aria-label', text);
}

function drawTimeline(box, doc) {
  box.textContent = '';
  const width = 1000, laneH = 22, left = 130, top = 18;
  const height = top + LANES.length * laneH + 8;
  const span = doc.to - doc.from;
  const x = (t) => left + ((t - doc.from) / span) * (width - left - 10);
  const svg = s('svg', { viewBox: '0 0 ' + width + ' ' + height, class: 'chart', role: 'img', 'aria-label': 'timeline of ' + doc.profile, 'data-from': doc.from, 'data-to': doc.to });
  LANES.forEach((l, i) => {
    const y = top + i * laneH;
    svg.append(s('rect', { x: 0, y: y, width: width, height: laneH, class: i % 2 ? 'lane odd' : 'lane' }));
    svg.append(s('text', { x: 6, y: y + 15, class: 'lanetitle' }, l.title));
  });
  for (let k = 0; k <= 4; k++) {
    const t = doc.from + (span * k) / 4;
    svg.append(s('line', { x1: x(t), x2: x(t), y1: top, y2: height - 8, class: 'grid' }));
    svg.append(s('text', { x: Math.min(x(t), width - 90), y: 12, class: 'axis' }, when(t).slice(5, 16)));
  }
  const laneOf = (cat) => LANES.findIndex((l) => l.cats.includes(cat));
  const marks = s('g', { class: 'marks' });
  if (doc.events) {
    for (const e of doc.events) {
      const li = laneOf(e.category);
      const cy = top + (li < 0 ? 3 : li) * laneH + laneH / 2;
      const m = s('circle', { cx: x(e.at).toFixed(1), cy: cy, r: 4.5, class: 'mark ' + e.category, 'data-event-id': e.id, 'data-category': e.category });
      tip(m, when(e.at) + ' — ' + e.label);
      marks.append(m);
    }
  } else {
    const size = doc.buckets.size_ms;
    for (const [cat, counts] of Object.entries(doc.buckets.series)) {
      const li = laneOf(cat);
      const max = Math.max(1, ...counts);
      counts.forEach((n, b) => {
        if (!n) return;
        const y0 = top + (li < 0 ? 3 : li) * laneH;
        const hgt = Math.max(2, (n / max) * (laneH - 4));
        const r = s('rect', { x: x(doc.from + b * size).toFixed(1), y: (y0 + laneH - 2 - hgt).toFixed(1), width: Math.max(2, ((width - left) / 96) - 1).toFixed(1), height: hgt.toFixed(1), class: 'bucket ' + cat, 'data-bucket-count': n });
        tip(r, n + ' × ' + cat + ' from ' + when(doc.from + b * size));
        marks.append(r);
      });
    }
  }
  const ai = LANES.findIndex((l) => l.id === 'alerts');
  for (const a of doc.alerts || []) {
    if (a.at < doc.from || a.at > doc.to) continue;
    const m = s('rect', { x: (x(a.at) - 4).toFixed(1), y: top + ai * laneH + 6, width: 8, height: 10, class: 'alert ' + a.status, 'data-alert': a.kind });
    tip(m, when(a.at) + ' — alert ' + a.status + ': ' + a.summary);
    marks.append(m);
  }
  const gi = LANES.findIndex((l) => l.id === 'logins');
  let loginNote = null;
  if (doc.login_history.rows) {
    const inWindow = doc.login_history.rows.filter((l) => l.at >= doc.from && l.at < doc.to);
    const outside = doc.login_history.rows.length - inWindow.length;
    box.setAttribute('data-login-read-at', doc.login_history.read_at);
    loginNote = inWindow.length + ' LoginHistory row(s) in the window, read from the org ' + when(doc.login_history.read_at) +
      (outside ? ' (' + outside + ' older not drawn)' : '');
    if (!inWindow.length) {
      svg.append(s('text', { x: left, y: top + gi * laneH + 15, class: 'missing' }, 'no LoginHistory row in this window'));
    }
    for (const l of inWindow) {
      const m = s('path', { d: 'M' + x(l.at).toFixed(1) + ' ' + (top + gi * laneH + 5) + ' l5 12 h-10 z', class: 'login ' + (l.status === 'Success' ? 'ok' : 'fail'), 'data-login-at': l.server_at, 'data-login-status': l.status });
      tip(m, when(l.server_at) + ' — LoginHistory: ' + l.status + ' from ' + l.source_ip + ' (' + (l.application || l.login_type) + ')');
      marks.append(m);
    }
  } else {
    svg.append(s('text', { x: left, y: top + gi * laneH + 15, class: 'missing', 'data-missing': 'login_history' }, 'LoginHistory not available: ' + doc.login_history.error));
  }
  const ui = LANES.findIndex((l) => l.id === 'usage');
  const samples = (doc.api_samples || []).filter((p) => p[0] >= doc.from);
  if (samples.length) {
    const y = (p) => top + ui * laneH + laneH - 3 - (p[2] ? (p[1] / p[2]) * (laneH - 6) : 0);
    const pts = samples.map((p) => x(p[0]).toFixed(1) + ',' + y(p).toFixed(1)).join(' ');
    const line = s('polyline', { points: pts, class: 'usage-line' });
    tip(line, 'daily API requests used: ' + samples[samples.length - 1][1] + ' of ' + samples[samples.length - 1][2]);
    marks.append(line);
  } else {
    svg.append(s('text', { x: left, y: top + ui * laneH + 15, class: 'missing' }, 'no API usage sample in this window'));
  }
  svg.append(marks);
  const note = doc.events
    ? (doc.total === 0 ? (doc.audit_error || 'No auth event in this window.') : doc.total + ' events in the window (' + doc.window + ')')
    : doc.total + ' events in the window: too many to draw one by one, shown as counts per ' + dur(doc.buckets.size_ms / 1000);
  box.append(h('div', { class: 'tl-head' }, h('strong', {}, 'timeline'), ' ', h('span', { class: 'dim', 'data-total': doc.total }, note),
    loginNote ? h('span', { class: 'dim' }, ' · ' + loginNote) : null), svg);
}

function drawPatterns(box, doc) {
  box.textContent = '';
  box.append(h('h3', {}, 'patterns'));
  if (!doc.events) {
    box.append(h('p', { class: 'note' }, 'Patterns are computed over windows of up to 2,000 events; pick a shorter window.'));
    return;
  }
  if (!doc.patterns.length) {
    box.append(h('p', { class: 'note', 'data-patterns-none': '' }, 'No pattern in this window.'));
    return;
  }
  for (const p of doc.patterns) {
    box.append(h('div', { class: 'pattern', 'data-pattern': p.id },
      h('div', { class: 'pname' }, p.name),
      h('p', {}, p.explanation),
      h('ul', {}, p.evidence.map((e) => h('li', {}, e))),
      h('p', { class: 'fix' }, h('strong', {}, 'what to do: '), p.what_to_do)));
  }
}

async function loadTimeline(name) {
  const box = document.querySelector('[data-timeline="' + CSS.escape(name) + '"]');
  const pat = document.querySelector('[data-patterns="' + CSS.escape(name) + '"]');
  try {
    const doc = await getJSON('/api/v1/events?profile=' + encodeURIComponent(name) + '&window=' + state.window);
    drawTimeline(box, doc);
    drawPatterns(pat, doc);
    box.setAttribute('data-loaded', state.window);
  } catch (e) {
    box.textContent = '';
    box.append(h('p', { class: 'note bad' }, 'The timeline could not be loaded: ' + e.message));
  }
}

async function refresh() {
  const main = document.getElementById('profiles');
  let st;
  try {
    st = await getJSON('/api/v1/status');
  } catch (e) {
    document.getElementById('meta').textContent = 'cannot read the status: ' + e.message;
    return;
  }
  document.getElementById('meta').textContent = 'sfkeep ' + st.sfkeep.version + ' · ' + st.profiles.length + ' profile(s) · ' +
    (st.webhooks.length ? st.webhooks.length + ' webhook(s)' : 'no webhook') + ' · updated ' + when(st.sfkeep.now);
  main.textContent = '';
  if (!st.profiles.length) {
    main.append(h('p', { class: 'note' }, 'No profile is watched.'));
  }
  for (const p of st.profiles) main.append(profileSection(p));
  // Which status answer the rows show (tests compare the rows with that very answer).
  document.body.setAttribute('data-status-now', String(st.sfkeep.now));
  await Promise.all(st.profiles.map((p) => loadTimeline(p.name)));
  document.body.setAttribute('data-ready', '1');
}

function init() {
  for (const b of document.querySelectorAll('#windows button')) {
    b.addEventListener('click', () => {
      state.window = b.getAttribute('data-window');
      for (const o of document.querySelectorAll('#windows button')) o.classList.toggle('on', o === b);
      refresh();
    });
  }
  refresh();
  state.timer = setInterval(refresh, 15000);
}

document.addEventListener('DOMContentLoaded', init);
