// Opens a report file in headless Chromium with the network cut off and says what the page asked
// for and how it looks. Called by tests/ui/test_offline_reports.py:
// `node offline.mjs '<json args>'` with args.chromium, args.page (a file path), args.kind
// ("data_docs" or "evidently"), args.artifacts and args.name (for the screenshot); prints one JSON line.
import { chromium } from 'playwright-core';
import path from 'node:path';
import { pathToFileURL } from 'node:url';

const args = JSON.parse(process.argv[2] || '{}');
const browser = await chromium.launch({ executablePath: args.chromium, args: ['--no-sandbox', '--disable-dev-shm-usage'] });
const context = await browser.newContext({ viewport: { width: 1400, height: 1000 }, offline: true });
const page = await context.newPage();
page.setDefaultTimeout(args.timeout_ms || 30000);
const pageUrl = pathToFileURL(args.page).href;
const requests = [];
const errors = [];
page.on('request', (r) => { if (r.url() !== pageUrl && !r.url().startsWith('data:')) requests.push(r.url()); });
page.on('pageerror', (e) => errors.push(String(e)));
page.on('console', (m) => { if (m.type() === 'error') errors.push(m.text()); });
await context.route('**/*', (route) => (route.request().url() === pageUrl ? route.continue() : route.abort()));

const style = (selector, prop, pseudo = null) => page.evaluate(
  ([s, p, ps]) => { const el = document.querySelector(s); return el ? getComputedStyle(el, ps)[p] : null; },
  [selector, prop, pseudo],
);
// What an unstyled page shows instead: a <div> with no stylesheet has no border, padding or flex layout.
const defaults = await page.evaluate(() => {
  const d = document.createElement('div');
  document.documentElement.appendChild(d);
  const s = getComputedStyle(d);
  const out = { fontFamily: getComputedStyle(document.documentElement).fontFamily, display: s.display, borderTopWidth: s.borderTopWidth };
  d.remove();
  return out;
});

let code = 0;
try {
  await page.goto(pageUrl, { waitUntil: 'load' });
  const result = { requests, errors, defaults };
  if (args.kind === 'data_docs') {
    result.styles = {
      bodyFont: await style('body', 'fontFamily'),
      rowDisplay: await style('.row', 'display'),
      cardBorder: await style('.card', 'borderTopWidth'),
      badgeBackground: await style('.badge', 'backgroundColor'),
      tableCellPadding: await style('.table td', 'paddingTop'),
      failIcon: await style('.fa-times', 'content', '::before'),
      okIcon: await style('.fa-check-circle', 'content', '::before'),
    };
    result.logoWidth = await page.evaluate(() => document.querySelector('.navbar-brand img')?.naturalWidth ?? 0);
    await page.screenshot({ path: path.join(args.artifacts, `${args.name}.png`), fullPage: false });
    // Bootstrap's collapse: "Show more info..." opens its body.
    const toggle = page.locator('a[data-toggle="collapse"]').first();
    const target = (await toggle.getAttribute('href')).slice(1);
    const shown = () => page.evaluate((id) => getComputedStyle(document.getElementById(id)).display !== 'none', target);
    const before = await shown();
    await toggle.click();
    result.collapse = { before, after: await shown() };
    // The "Failed Only" filter (jQuery in GX's page) hides the passing expectations' rows.
    const visibleRows = () => page.evaluate(() => [...document.querySelectorAll('.hide-succeeded-validation-target-child')]
      .filter((el) => el.parentElement.offsetParent !== null).length);
    const failedRows = () => page.evaluate(() => [...document.querySelectorAll('td .fa-times')].filter((el) => el.offsetParent !== null).length);
    const all = await visibleRows();
    await page.getByText('Failed Only').click();
    result.filter = { all, failedOnly: await visibleRows(), failedShown: await failedRows() };
  } else {
    // Evidently draws the report from its inline bundle and data into the root <div>.
    await page.waitForFunction(() => document.querySelectorAll('[id^="root_"] *').length > 50);
    result.drawn = await page.evaluate(() => document.querySelectorAll('[id^="root_"] *').length);
    result.bodyFont = await style('body', 'fontFamily');
    await page.screenshot({ path: path.join(args.artifacts, `${args.name}.png`), fullPage: false });
  }
  console.log(JSON.stringify(result));
} catch (err) {
  code = 1;
  console.error(`${args.name} failed: ${err.stack || err}\nrequests: ${JSON.stringify(requests)}\nerrors: ${JSON.stringify(errors)}`);
  await page.screenshot({ path: path.join(args.artifacts, `error-${args.name}.png`) }).catch(() => {});
} finally {
  await browser.close();
}
process.exit(code);
