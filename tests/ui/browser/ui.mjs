// Drives the Airflow UI in headless Chromium (Debian's /usr/bin/chromium through playwright-core).
// Called by tests/ui/test_browser.py: `node ui.mjs <step> '<json args>'`; prints one JSON result line
// on stdout, saves screenshots under args.artifacts, and exits 1 (after an error screenshot) on failure.
import { chromium } from 'playwright-core';
import path from 'node:path';

const [step, rawArgs] = process.argv.slice(2);
const args = JSON.parse(rawArgs || '{}');
const shot = (page, name) => page.screenshot({ path: path.join(args.artifacts, `${name}.png`), fullPage: true });

async function login(page) {
  await page.goto(`${args.url}/`);
  await page.getByLabel('Username').fill(args.user);
  await page.getByLabel('Password').fill(args.password);
  await shot(page, '01-login');
  await page.getByRole('button', { name: 'Sign in' }).click();
  await page.waitForURL((u) => !u.pathname.startsWith('/auth'));
}

async function openTriggerForm(page, dagId) {
  await page.goto(`${args.url}/dags/${dagId}`);
  await page.getByRole('button', { name: 'Trigger' }).first().click();
  const dialog = page.getByRole('dialog');
  await dialog.getByText('Run Parameters').waitFor();
  return dialog;
}

// Log in, check every DAG's form shows its params' titles, then trigger mlops_retraining with a
// changed estimator and holdout share (after trying an out-of-range one); returns the titles seen,
// what the form made of the out-of-range value, and the run the UI created.
async function trigger(page) {
  await login(page);
  await page.context().storageState({ path: args.state });
  const forms = {};
  for (const [dagId, titles] of Object.entries(args.forms)) {
    const dialog = await openTriggerForm(page, dagId);
    // Field labels, less the "*" the form appends to required ones.
    const labels = (await dialog.locator('label').allInnerTexts()).map((t) => t.replace(/\*\s*$/, '').trim());
    forms[dagId] = titles.filter((title) => labels.includes(title));
    await shot(page, `02-trigger-form-${dagId}`);
    await page.keyboard.press('Escape');
  }
  const dialog = await openTriggerForm(page, args.trigger.dag_id);
  await dialog.getByRole('combobox').first().click(); // the "Estimator" enum (react-select)
  await page.keyboard.type(args.trigger.estimator.split('.').pop());
  await page.keyboard.press('Enter');
  const holdout = dialog.getByLabel('Holdout share');
  await holdout.fill(String(args.trigger.out_of_range)); // the form must not accept it
  await holdout.blur();
  const corrected = await holdout.inputValue();
  await holdout.fill(String(args.trigger.test_size));
  await holdout.blur();
  const window = dialog.getByLabel('Training window (months)'); // the first model learns from the snapshot
  await window.fill(String(args.trigger.window_months));
  await window.blur();
  await shot(page, '03-trigger-form-changed');
  const posted = page.waitForResponse((r) => r.url().includes('/dagRuns') && r.request().method() === 'POST');
  await dialog.getByRole('button', { name: 'Trigger' }).click();
  const response = await posted;
  const run = await response.json();
  await page.waitForURL((u) => u.pathname.includes('/runs/'));
  await shot(page, '04-run-started');
  return { forms, corrected, status: response.status(), run };
}

// After the run: the run's conf as the UI shows it, the training task's "MLflow run" link, the
// validation task's "Validation report" link (followed), and the champion on the MLOps page.
async function inspect(page) {
  const runPath = `${args.url}/dags/${args.dag_id}/runs/${encodeURIComponent(args.run_id)}`;
  await page.goto(`${runPath}/details`);
  await page.getByText(args.expect_in_conf).first().waitFor();
  await shot(page, '05-run-details');

  await page.goto(`${runPath}/tasks/train/details`);
  const mlflowLink = page.getByRole('link', { name: 'MLflow run' });
  await mlflowLink.waitFor();
  const mlflowHref = await mlflowLink.getAttribute('href');
  await shot(page, '06-train-task-links');

  await page.goto(`${runPath}/tasks/validate/details`);
  const reportLink = page.getByRole('link', { name: 'Validation report' });
  await reportLink.waitFor();
  const reportHref = await reportLink.getAttribute('href');
  const [reportResponse] = await Promise.all([page.waitForNavigation(), reportLink.click()]);
  const reportStatus = reportResponse ? reportResponse.status() : 0;
  const reportTitle = await page.title();
  await shot(page, '07-validation-report');

  await page.goto(`${args.url}/`);
  await page.getByRole('button', { name: 'Browse' }).click();
  await page.getByRole('menuitem', { name: 'MLOps' }).click();
  const frame = page.frameLocator('iframe');
  const champion = frame.locator(`[id="champion-${args.model}"]`);
  await champion.waitFor();
  const championText = (await champion.innerText()).trim();
  await shot(page, '08-mlops-page');
  return { mlflow_href: mlflowHref, report_href: reportHref, report_status: reportStatus, report_title: reportTitle,
    mlops_url: page.url(), champion: championText };
}

// The MLOps page's charts after monthly runs: every drawn mark and bar (series, period, value, flagged)
// and the segment rows, read from the page the Airflow UI embeds.
async function charts(page) {
  await page.goto(`${args.url}/plugin/mlops`);
  const frame = page.frameLocator('iframe');
  await frame.locator('figure[data-chart="quality"] circle').first().waitFor();
  const drawn = await frame.locator('figure[data-chart] [data-series]').evaluateAll((nodes) => nodes.map((n) => ({
    chart: n.closest('figure').dataset.chart, series: n.dataset.series, period: n.dataset.period,
    value: Number(n.dataset.value), flagged: n.dataset.flagged === 'true', tag: n.tagName.toLowerCase(),
    visible: n.getBoundingClientRect().width > 0,
  })).filter((d) => d.tag !== 'polyline'));
  const segments = await frame.locator('tr[data-segment]').evaluateAll((rows) => rows.map((r) => r.dataset.segment));
  await frame.locator('figure[data-chart="quality"]').scrollIntoViewIfNeeded();
  await shot(page, '09-mlops-charts');
  return { drawn, segments };
}

// What the MLOps page says about one model (args.model), as shown: the header, each role's "measured
// on" line, how a decision reason is laid out (its lines on screen), the quality rows and chart marks
// marked as the scoring version's own holdout month, and every number a reader sees in the section.
async function clarity(page) {
  await login(page); // its own session: this step does not depend on the trigger test having run
  await page.goto(`${args.url}/plugin/mlops`);
  const frame = page.frameLocator('iframe');
  const section = frame.locator(`section[data-model="${args.model}"]`);
  await section.locator('h2').waitFor();
  const header = (await section.locator('h2').innerText()).trim();
  const measured = (await section.locator('p.measured').allInnerTexts()).map((t) => t.trim());
  // innerText follows the CSS: a line break the page does not show reads as a space.
  const reasons = await section.locator('.reason').evaluateAll((nodes) => nodes.map((n) => ({
    text: n.innerText, whiteSpace: getComputedStyle(n).whiteSpace,
  })));
  const holdoutRows = await section.locator('table.quality tr[data-holdout="true"]').evaluateAll((rows) => rows.map((r) => r.dataset.period));
  const holdoutMarks = await section.locator('figure[data-chart="quality"] circle[data-holdout="true"]').evaluateAll((marks) => marks.map((m) => ({
    period: m.dataset.period, stroke: getComputedStyle(m).stroke, visible: m.getBoundingClientRect().width > 0,
  })));
  const text = await section.innerText();
  await section.scrollIntoViewIfNeeded();
  await shot(page, '10-mlops-page-clarity');
  return { header, measured, reasons, holdout_rows: holdoutRows, holdout_marks: holdoutMarks, text };
}

const steps = { trigger, inspect, charts, clarity };
const browser = await chromium.launch({ executablePath: args.chromium, args: ['--no-sandbox', '--disable-dev-shm-usage'] });
const context = await browser.newContext({
  viewport: { width: 1400, height: 1000 },
  ...(step === 'trigger' || step === 'clarity' ? {} : { storageState: args.state }),
});
const page = await context.newPage();
page.setDefaultTimeout(args.timeout_ms || 30000);
let code = 0;
try {
  if (!steps[step]) throw new Error(`unknown step ${step}`);
  console.log(JSON.stringify(await steps[step](page)));
} catch (err) {
  code = 1;
  console.error(`${step} failed at ${page.url()}: ${err.stack || err}`);
  await shot(page, `error-${step}`).catch(() => {});
} finally {
  await browser.close();
}
process.exit(code);
