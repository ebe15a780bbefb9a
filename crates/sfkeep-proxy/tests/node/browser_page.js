// Opens PAGE_URL (a page on another loopback origin that tries to use the proxy) in Debian's
// headless Chromium through playwright-core, waits until the page says it is done, and prints
// one JSON line: what the page reported.
const path = require('path');
const { chromium } = require(path.join(process.env.NODE_DEPS_DIR, 'node_modules', 'playwright-core'));
const fs = require('fs');
const os = require('os');

(async () => {
  const profile = fs.mkdtempSync(path.join(os.tmpdir(), 'sfkeep-chromium-'));
  // Chromium as root needs --no-sandbox; a fresh profile, no background traffic.
  const ctx = await chromium.launchPersistentContext(profile, {
    executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
    headless: true,
    args: ['--no-sandbox', '--disable-gpu', '--no-first-run', '--disable-background-networking',
           '--disable-component-update', '--disable-sync'],
  });
  try {
    const page = await ctx.newPage();
    await page.goto(process.env.PAGE_URL);
    await page.waitForFunction(() => window.sfkeepDone === true, null, { timeout: 60000 });
    const report = await page.evaluate(() => window.sfkeepReport);
    console.log(JSON.stringify(report));
  } finally {
    await ctx.close();
    fs.rmSync(profile, { recursive: true, force: true });
  }
})().catch((e) => { console.error(e); process.exit(1); });
