// sfkeep status page: draws /api/v1/status and /api/v1/events. Read-only (GET to its own
// origin only), builds the DOM with textContent (org data is never parsed as HTML), and
// shows no token.
'use strict';

const SVG = 'http://www.w3.org/2000/svg';
const state = { window: '24h', timer: null, docs: {} };

// `short`: the title on a narrow screen, where the lane titles get a narrower column.
const LANES = [
  { id: 'refresh', title: 'refreshes', short: 'refreshes', cats: ['refresh', 'adopted'] },
  { id: 'death', title: 'deaths · heals', short: 'deaths', cats: ['death', 'heal'] },
  { id: 'keep_alive', title: 'keep-alives', short: 'keep-alive', cats: ['keep_alive'] },
  { id: 'reauth', title: 're-auth · failures', short: 're-auth', cats: ['reauth', 'failure', 'fallback', 'store', 'probe', 'other'] },
  { id: 'api', title: 'API calls', short: 'API calls', cats: ['api'] },
  { id: 'alerts', title: 'alerts sent', short: 'alerts', cats: [] },
  { id: 'logins', title: 'LoginHistory', short: 'logins', cats: [] },
  { id: 'usage', title: 'API usage', short: 'API usage', cats: [] },
];

// What an event of the timeline was, in plain words, with its cause when it has one.
function words(id) { return String(id || '').replace(/_/g, ' '); }
// A death's colour by its diagnosed cause (the same cause the same colour in every window).
const CAUSE_CLASS = {
  session_timeout: 'cause-0', logged_out_elsewhere: 'cause-1', password_changed: 'cause-2', ip_restricted: 'cause-3',
  app_tokens_revoked: 'cause-4', user_frozen: 'cause-5', user_deactivated: 'cause-6', unknown: 'cause-unknown',
};
function causeClass(cause) { return CAUSE_CLASS[cause] || 'cause-7'; }
// The cause sfkeep diagnosed for a death (server side: /api/v1/events' death_cause).
function diagnosed(e) {
  const d = e.death_cause;
  return d ? ' — cause: ' + words(d.cause) + (d.evidence ? ' (' + d.evidence + ')' : '') : '';
}
function describeEvent(e) {
  const api = e.api ? ' (' + ({ rest: 'REST API', soap: 'SOAP API', bulk: 'Bulk API', bulk2: 'Bulk 2.0' }[e.api] || e.api) + ')' : '';
  const by = e.grant ? ' by ' + words(e.grant) : '';
  const gen = e.generation !== null && e.generation !== undefined ? ', generation ' + e.generation : '';
  const cause = e.cause ? ' — cause: ' + words(e.cause) : '';
  switch (e.category) {
    case 'death': return 'session died: the org answered INVALID_SESSION_ID' + api + gen + diagnosed(e);
    case 'heal': return 'healed: a new token after the 401' + by + gen;
    case 'refresh': return 'token refreshed' + (e.reason ? ' (' + words(e.reason) + ')' : '') + by + gen;
    case 'adopted': return 'token taken from the shared store (no token request)' + gen;
    case 'keep_alive': return e.kind === 'token.invalidated' ? 'keep-alive: token given up to use the refresh token' + gen : 'keep-alive refresh' + by + gen;
    case 'reauth': return 're-authentication required' + (e.cause ? ' (the token request said: ' + words(e.cause) + ')' : '') + diagnosed(e);
    case 'failure': return 'token request failed' + by + cause;
    case 'fallback': return 'fallback grant used' + cause;
    case 'api': return 'API call succeeded' + api;
    case 'store': return 'token store: ' + words(e.kind.replace(/^store\./, '')) + cause;
    case 'probe': return "doctor's probe: " + e.kind + cause;
    default: return e.kind + cause;
  }
}

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

// A mark's tooltip text lives in data-tip; one tooltip element shows it on hover, on focus
// (keyboard) and on tap, listing every mark of the same lane under the pointer (marks of one
// minute overlap on a day's axis). No SVG <title>: it would show a second, browser tooltip.
function tip(node, at, what, lane, x) {
  const text = at + ' — ' + what;
  node.setAttribute('data-tip', text);
  node.setAttribute('data-tip-at', at);
  node.setAttribute('data-tip-what', what);
  node.setAttribute('data-lane', lane);
  node.setAttribute('data-x', x.toFixed(1));
  node.setAttribute('tabindex', '0');
  node.setAttribute('aria-label', text);
}

function tipBox() {
  let t = document.getElementById('tip');
  if (!t) {
    t = h('div', { id: 'tip', role: 'tooltip', hidden: '' });
    document.body.append(t);
  }
  return t;
}

function showTip(mark, clientX, clientY) {
  const svg = mark.ownerSVGElement;
  const x = Number(mark.getAttribute('data-x'));
  const lane = mark.getAttribute('data-lane');
  // The marks of this lane within 4 px (in drawing units: the chart is drawn at its own width).
  const near = [...svg.querySelectorAll('[data-tip][data-lane="' + lane + '"]')]
    .filter((m) => Math.abs(Number(m.getAttribute('data-x')) - x) <= 4);
  const shown = near.length ? near : [mark];
  // Alike events (same words) as one line with their count; the newest first.
  const groups = new Map();
  for (const m of shown) {
    const what = m.getAttribute('data-tip-what');
    const g = groups.get(what) || { what, marks: [] };
    g.marks.push(m);
    groups.delete(what);
    groups.set(what, g);
  }
  // The hovered (or focused) event's own line first, then the others newest first.
  const all = [...groups.values()].reverse();
  const own = all.findIndex((g) => g.marks.includes(mark));
  if (own > 0) all.unshift(...all.splice(own, 1));
  const list = all.slice(0, 8);
  const t = tipBox();
  t.textContent = '';
  if (shown.length > 1) t.append(h('div', { class: 'tip-head' }, shown.length + ' events here'));
  for (const g of list) {
    const last = g.marks[g.marks.length - 1].getAttribute('data-tip-at');
    t.append(h('div', { class: 'tip-item' }, (g.marks.length > 1 ? g.marks.length + ' × ' : '') + g.what + ' · ' + (g.marks.length > 1 ? 'latest ' : '') + last));
  }
  if (groups.size > list.length) t.append(h('div', { class: 'tip-more' }, '… and ' + (groups.size - list.length) + ' older kinds of event'));
  t.setAttribute('data-ids', list.flatMap((g) => g.marks.map((m) => m.getAttribute('data-event-id'))).filter(Boolean).join(','));
  // Measured at the top left, where nothing narrows it, then placed.
  t.style.left = '0px';
  t.style.top = '0px';
  t.hidden = false;
  // Beside the pointer (or the mark), always inside the viewport.
  const r = mark.getBoundingClientRect();
  const px = clientX === undefined ? r.left + r.width / 2 : clientX;
  const py = clientY === undefined ? r.top + r.height / 2 : clientY;
  const vw = document.documentElement.clientWidth, vh = window.innerHeight;
  const w = t.offsetWidth, ht = t.offsetHeight;
  let left = px + 12, top = py + 14;
  if (left + w > vw - 4) left = Math.max(4, px - 12 - w);
  if (left + w > vw - 4) left = Math.max(4, vw - 4 - w);
  if (top + ht > vh - 4) top = Math.max(4, py - 14 - ht);
  t.style.left = left + 'px';
  t.style.top = top + 'px';
}

function hideTip() {
  const t = document.getElementById('tip');
  if (t) t.hidden = true;
}

function initTips() {
  const markOf = (e) => (e.target instanceof Element ? e.target.closest('[data-tip]') : null);
  document.addEventListener('pointerover', (e) => { const m = markOf(e); if (m) showTip(m, e.clientX, e.clientY); });
  document.addEventListener('pointerout', (e) => { if (markOf(e)) hideTip(); });
  document.addEventListener('focusin', (e) => { const m = markOf(e); if (m) showTip(m); });
  document.addEventListener('focusout', (e) => { if (markOf(e)) hideTip(); });
  document.addEventListener('keydown', (e) => { if (e.key === 'Escape') hideTip(); });
  window.addEventListener('scroll', hideTip, { passive: true });
}

function drawTimeline(box, doc) {
  box.textContent = '';
  // Drawn at the box's own width, so its text keeps its size on any screen.
  const width = Math.max(280, Math.floor(box.clientWidth || 1000));
  const narrow = width < 600;
  const laneH = 22, left = narrow ? 78 : 130, top = 18;
  const height = top + LANES.length * laneH + 8;
  const span = doc.to - doc.from;
  const x = (t) => left + ((t - doc.from) / span) * (width - left - 10);
  const svg = s('svg', { viewBox: '0 0 ' + width + ' ' + height, class: 'chart', role: 'img', 'aria-label': 'timeline of ' + doc.profile, 'data-from': doc.from, 'data-to': doc.to, 'data-width': width });
  LANES.forEach((l, i) => {
    const y = top + i * laneH;
    svg.append(s('rect', { x: 0, y: y, width: width, height: laneH, class: i % 2 ? 'lane odd' : 'lane' }));
    svg.append(s('text', { x: 6, y: y + 15, class: 'lanetitle' }, narrow ? l.short : l.title));
  });
  const ticks = narrow ? 2 : 4;
  for (let k = 0; k <= ticks; k++) {
    const t = doc.from + (span * k) / ticks;
    svg.append(s('line', { x1: x(t), x2: x(t), y1: top, y2: height - 8, class: 'grid' }));
    svg.append(s('text', { x: Math.min(x(t), width - 66), y: 12, class: 'axis' }, when(t).slice(5, 16)));
  }
  const laneOf = (cat) => LANES.findIndex((l) => l.cats.includes(cat));
  const marks = s('g', { class: 'marks' });
  if (doc.events) {
    for (const e of doc.events) {
      const li = laneOf(e.category);
      const cy = top + (li < 0 ? 3 : li) * laneH + laneH / 2;
      const dc = e.death_cause ? e.death_cause.cause : null;
      const m = s('circle', { cx: x(e.at).toFixed(1), cy: cy, r: 4.5, class: 'mark ' + e.category + (dc ? ' ' + causeClass(dc) : ''), 'data-event-id': e.id, 'data-category': e.category, 'data-death-cause': dc });
      tip(m, when(e.at), describeEvent(e), li < 0 ? 3 : li, x(e.at));
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
        tip(r, 'from ' + when(doc.from + b * size), n + ' × ' + cat, 'bucket-' + cat + '-' + b, x(doc.from + b * size));
        marks.append(r);
      });
    }
  }
  const ai = LANES.findIndex((l) => l.id === 'alerts');
  for (const a of doc.alerts || []) {
    if (a.at < doc.from || a.at > doc.to) continue;
    const m = s('rect', { x: (x(a.at) - 4).toFixed(1), y: top + ai * laneH + 6, width: 8, height: 10, class: 'alert ' + a.status, 'data-alert': a.kind });
    tip(m, when(a.at), 'alert ' + a.status + ': ' + a.summary, ai, x(a.at));
    marks.append(m);
  }
  const gi = LANES.findIndex((l) => l.id === 'logins');
  let loginNote = null, missingNote = null;
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
      tip(m, when(l.server_at), 'LoginHistory: ' + l.status + ' from ' + l.source_ip + ' (' + (l.application || l.login_type) + ')', gi, x(l.at));
      marks.append(m);
    }
  } else {
    // The org's words can be long: said in full under the chart, where they wrap.
    svg.append(s('text', { x: left, y: top + gi * laneH + 15, class: 'missing' }, 'not available (see below)'));
    missingNote = h('p', { class: 'note missing-note', 'data-missing': 'login_history' }, 'LoginHistory not available: ' + doc.login_history.error);
  }
  const ui = LANES.findIndex((l) => l.id === 'usage');
  const samples = (doc.api_samples || []).filter((p) => p[0] >= doc.from);
  if (samples.length) {
    const y = (p) => top + ui * laneH + laneH - 3 - (p[2] ? (p[1] / p[2]) * (laneH - 6) : 0);
    const pts = samples.map((p) => x(p[0]).toFixed(1) + ',' + y(p).toFixed(1)).join(' ');
    const line = s('polyline', { points: pts, class: 'usage-line' });
    tip(line, when(samples[samples.length - 1][0]), 'daily API requests used: ' + samples[samples.length - 1][1] + ' of ' + samples[samples.length - 1][2], ui, x(samples[samples.length - 1][0]));
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
  if (doc.events && (doc.death_causes || []).length) box.append(causeLegend(doc.death_causes));
  if (missingNote) box.append(missingNote);
}

// The deaths of the window by cause: a swatch of each cause's colour, its words and count.
function causeLegend(causes) {
  return h('div', { class: 'legend', 'data-legend': '' }, h('span', { class: 'dim' }, 'deaths by cause:'),
    causes.map((c) => h('span', { class: 'legend-item', 'data-cause': c.cause, 'data-deaths': c.deaths, title: c.title },
      s('svg', { viewBox: '0 0 12 12', width: 12, height: 12, 'aria-hidden': 'true' }, s('circle', { cx: 6, cy: 6, r: 5, class: 'mark death ' + causeClass(c.cause) })),
      ' ' + words(c.cause) + ' × ' + c.deaths)));
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
    state.docs[name] = doc;
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

// The timelines are drawn at their box's width: draw them again when it changes.
function redrawTimelines() {
  hideTip();
  for (const [name, doc] of Object.entries(state.docs)) {
    const box = document.querySelector('[data-timeline="' + CSS.escape(name) + '"]');
    if (box && box.querySelector('svg') && Number(box.querySelector('svg').getAttribute('data-width')) !== Math.max(280, Math.floor(box.clientWidth))) {
      drawTimeline(box, doc);
    }
  }
}

function init() {
  initTips();
  let pending = false;
  window.addEventListener('resize', () => {
    if (pending) return;
    pending = true;
    requestAnimationFrame(() => { pending = false; redrawTimelines(); });
  });
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
