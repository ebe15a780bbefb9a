// Opens each of PAGES (a JSON list of {name, url, shots: [{file, width, height, full, hover}]}) in
// Debian's headless Chromium through playwright-core, waits until the page has drawn
// (body[data-ready]), reads back what it shows, saves the screenshots into OUT_DIR, and prints
// one JSON line: per page, the console errors, every request's URL, the DOM's profiles and
// timeline marks, the page's text and HTML, and the /api/v1/status answer the rows were drawn
// from.
const path = require('path');
const { chromium } = require(path.join(process.env.NODE_DEPS_DIR, 'node_modules', 'playwright-core'));
const fs = require('fs');

// What the page shows, read from the DOM only.
function readPage() {
  const num = (v) => (v === undefined || v === null || v === '' ? null : Number(v));
  return {
    profiles: [...document.querySelectorAll('section[data-profile]')].map((sec) => {
      const tl = sec.querySelector('[data-timeline]');
      const svg = tl.querySelector('svg');
      return {
        name: sec.dataset.profile,
        state: (sec.querySelector('[data-state]') || {}).dataset?.state ?? null,
        state_text: (sec.querySelector('[data-state]') || {}).textContent ?? null,
        forecasts: [...sec.querySelectorAll('tr[data-forecast-kind]')].map((tr) => ({
          kind: tr.dataset.forecastKind, at: num(tr.dataset.at), text: tr.innerText,
        })),
        from: svg ? num(svg.dataset.from) : null,
        to: svg ? num(svg.dataset.to) : null,
        total: num((tl.querySelector('[data-total]') || { dataset: {} }).dataset.total),
        marks: [...tl.querySelectorAll('[data-event-id]')].map((m) => num(m.dataset.eventId)),
        death_causes: [...tl.querySelectorAll('[data-event-id][data-death-cause]')].map((m) => [num(m.dataset.eventId), m.dataset.deathCause]),
        legend: [...sec.querySelectorAll('[data-legend] [data-cause]')].map((e) => [e.dataset.cause, num(e.dataset.deaths)]),
        bucket_rects: tl.querySelectorAll('[data-bucket-count]').length,
        bucket_sum: [...tl.querySelectorAll('[data-bucket-count]')].reduce((a, r) => a + num(r.dataset.bucketCount), 0),
        logins: [...tl.querySelectorAll('[data-login-at]')].map((m) => ({
          at: num(m.dataset.loginAt), status: m.dataset.loginStatus,
        })),
        login_read_at: num(tl.dataset.loginReadAt),
        missing: [...sec.querySelectorAll('[data-missing]')].map((e) => ({ what: e.dataset.missing, text: e.textContent })),
        patterns: [...sec.querySelectorAll('[data-pattern]')].map((e) => e.dataset.pattern),
        patterns_text: [...sec.querySelectorAll('[data-pattern]')].map((e) => e.innerText),
        patterns_none: !!sec.querySelector('[data-patterns-none]'),
        timeline_text: tl.innerText,
        svg_nodes: tl.querySelectorAll('svg *').length,
      };
    }),
    status_now: document.body.dataset.statusNow ?? null,
    text: document.body.innerText,
    html: document.documentElement.outerHTML,
  };
}

// The layout at the current viewport: horizontal overflow, the elements that stick out of the
// viewport, and the smallest text as rendered (an SVG's text scaled as the SVG is drawn).
function readLayout() {
  const vw = document.documentElement.clientWidth;
  const offenders = [];
  let minFont = Infinity, minFontAt = null;
  for (const e of document.querySelectorAll('body *')) {
    if (e.closest('#tip')) continue;
    const r = e.getBoundingClientRect();
    if (!r.width && !r.height) continue;
    if (r.right > vw + 0.5 || r.left < -0.5) {
      offenders.push(e.tagName.toLowerCase() + (e.getAttribute('class') ? '.' + e.getAttribute('class') : '') + ' [' + Math.round(r.left) + ', ' + Math.round(r.right) + ']');
    }
    if (![...e.childNodes].some((n) => n.nodeType === 3 && n.textContent.trim())) continue;
    let px = parseFloat(getComputedStyle(e).fontSize);
    const svg = e.closest('svg');
    if (svg) px *= svg.getScreenCTM().a;
    if (px < minFont) { minFont = px; minFontAt = e.tagName.toLowerCase() + ': ' + e.textContent.slice(0, 40); }
  }
  return {
    width: vw, scroll_width: document.documentElement.scrollWidth,
    offenders: offenders.slice(0, 20), min_font_px: minFont === Infinity ? null : minFont, min_font_at: minFontAt,
  };
}

// Waits until every timeline is drawn at its box's width (the page draws them again after a
// resize).
async function timelinesFit(page) {
  await page.waitForFunction(() => [...document.querySelectorAll('[data-timeline]')].every((box) => {
    const svg = box.querySelector('svg');
    return !svg || Number(svg.getAttribute('data-width')) === Math.max(280, Math.floor(box.clientWidth));
  }), null, { timeout: 30000 });
}

// Hovers, lane by lane, the timeline mark that is on top at its centre (marks of one minute
// overlap on a day's axis) with the real mouse, and reads the tooltip back.
async function hoverMarks(page) {
  const out = [];
  const lanes = await page.evaluate(() => [...new Set([...document.querySelectorAll('[data-timeline] [data-event-id]')]
    .map((m) => m.closest('[data-timeline]').dataset.timeline + '|' + m.getAttribute('data-lane')))]);
  for (const key of lanes) {
    const [profile, lane] = key.split('|');
    const at = await page.evaluate(([profile, lane]) => {
      const box = document.querySelector('[data-timeline="' + CSS.escape(profile) + '"]');
      box.scrollIntoView({ block: 'center' });
      for (const m of [...box.querySelectorAll('[data-event-id][data-lane="' + lane + '"]')].reverse()) {
        const r = m.getBoundingClientRect();
        const x = r.left + r.width / 2, y = r.top + r.height / 2;
        const top = document.elementFromPoint(x, y);
        if (top === m) return { x, y, id: Number(m.dataset.eventId) };
      }
      return null;
    }, [profile, lane]);
    if (!at) continue;
    await page.mouse.move(1, 1);
    await page.mouse.move(at.x, at.y);
    await page.waitForFunction(() => { const t = document.getElementById('tip'); return t && !t.hidden; }, null, { timeout: 10000 });
    out.push(await page.evaluate(([profile, at]) => {
      const t = document.getElementById('tip');
      const r = t.getBoundingClientRect();
      return {
        profile, hovered: at.id, ids: (t.dataset.ids || '').split(',').filter(Boolean).map(Number), text: t.innerText,
        rect: { left: r.left, top: r.top, right: r.right, bottom: r.bottom },
        viewport: { width: document.documentElement.clientWidth, height: window.innerHeight },
      };
    }, [profile, at]));
  }
  await page.mouse.move(1, 1);
  return out;
}

async function visit(browser, p, outDir) {
  const report = { name: p.name, console_errors: [], requests: [], shots: [], layout: [], hovers: [] };
  const first = p.shots[0] || { width: 1280, height: 800 };
  const ctx = await browser.newContext({ viewport: { width: first.width, height: first.height } });
  const page = await ctx.newPage();
  page.on('console', (m) => { if (m.type() === 'error') report.console_errors.push(m.text()); });
  page.on('pageerror', (e) => report.console_errors.push('pageerror: ' + e.message));
  page.on('request', (r) => report.requests.push(r.url()));
  page.on('response', (r) => { if (r.status() >= 400) report.console_errors.push('HTTP ' + r.status() + ': ' + r.url()); });
  // Every /api/v1/status answer the page received: the rows are compared with the one they
  // were drawn from (the page names it), not with a later one (forecasts move as the
  // guardian samples the org).
  const statusBodies = [];
  page.on('response', (r) => {
    if (new URL(r.url()).pathname === '/api/v1/status') statusBodies.push(r.text().catch(() => null));
  });
  page.on('requestfailed', (r) => report.console_errors.push('request failed: ' + r.url() + ' ' + (r.failure() || {}).errorText));
  await page.goto(p.url);
  await page.waitForFunction(() => document.body.dataset.ready === '1', null, { timeout: 90000 });
  report.dom = await page.evaluate(readPage);
  const drawn = report.dom.status_now;
  const bodies = (await Promise.all(statusBodies)).filter(Boolean).map((b) => JSON.parse(b));
  report.status = bodies.find((b) => String(b.sfkeep.now) === drawn) || null;
  for (const shot of p.shots) {
    await page.setViewportSize({ width: shot.width, height: shot.height });
    // Let the layout settle at the new width (no timer: two animation frames).
    await page.evaluate(() => new Promise((r) => requestAnimationFrame(() => requestAnimationFrame(r))));
    await timelinesFit(page);
    report.layout.push(Object.assign({ shot: shot.file }, await page.evaluate(readLayout)));
    const file = path.join(outDir, shot.file);
    await page.screenshot({ path: file, fullPage: !!shot.full });
    report.shots.push(file);
    if (shot.hover) {
      report.hovers.push(...(await hoverMarks(page)).map((h) => Object.assign({ shot: shot.file }, h)));
      await page.evaluate(() => window.scrollTo(0, 0));
    }
  }
  // The tooltip of each event of focus_ids, reached by keyboard focus (on a day's axis the
  // marks of a few minutes overlap, so the pointer reaches only the top one): the focused
  // event's line comes first.
  report.focused = [];
  for (const id of p.focus_ids || []) {
    // Scrolled to first (a scroll hides the tooltip), then focused where it is.
    await page.evaluate(async (id) => {
      const m = document.querySelector('[data-timeline] [data-event-id="' + id + '"]');
      m.scrollIntoView({ block: 'center' });
      await new Promise((r) => requestAnimationFrame(() => requestAnimationFrame(r)));
      m.focus({ preventScroll: true });
    }, id);
    await page.waitForFunction(() => { const t = document.getElementById('tip'); return t && !t.hidden; }, null, { timeout: 10000 });
    report.focused.push(await page.evaluate((id) => {
      const t = document.getElementById('tip');
      const first = t.querySelector('.tip-item');
      return { id, first: first ? first.innerText : null, text: t.innerText, ids: (t.dataset.ids || '').split(',').filter(Boolean).map(Number) };
    }, id));
    await page.keyboard.press('Escape');
    await page.evaluate(() => document.activeElement && document.activeElement.blur());
  }
  if (p.click_windows) {
    // Every window of the timeline draws without an error.
    for (const w of ['7d', '30d', '24h']) {
      await page.click('#windows button[data-window="' + w + '"]');
      await page.waitForFunction((w) => [...document.querySelectorAll('[data-timeline]')]
        .every((t) => t.getAttribute('data-loaded') === w), w, { timeout: 60000 });
    }
  }
  await ctx.close();
  return report;
}

(async () => {
  const pages = JSON.parse(process.env.PAGES);
  const outDir = process.env.OUT_DIR;
  fs.mkdirSync(outDir, { recursive: true });
  // Chromium as root needs --no-sandbox; no background traffic of its own.
  const browser = await chromium.launch({
    executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
    headless: true,
    args: ['--no-sandbox', '--disable-gpu', '--no-first-run', '--disable-background-networking',
           '--disable-component-update', '--disable-sync'],
  });
  const out = [];
  try {
    for (const p of pages) out.push(await visit(browser, p, outDir));
  } finally {
    await browser.close();
  }
  console.log(JSON.stringify(out));
})().catch((e) => { console.error(e); process.exit(1); });
