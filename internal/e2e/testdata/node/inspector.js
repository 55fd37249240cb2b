// Drives the keyhole inspector's page in headless Chromium, for
// internal/e2e's TestInspectorInBrowser. Arguments: the inspector's URL,
// the screenshot's path. On stdin it reads "sent PATH" once the test has
// sent a request through the tunnel; on stdout it prints "ready", then
// "shown MS" once the row for PATH shows status 200, then one JSON line
// of what the page showed.
'use strict';
const readline = require('readline');
const { chromium } = require('playwright-core');

const [inspectorURL, shot] = process.argv.slice(2);
const lines = readline.createInterface({ input: process.stdin });
const nextLine = () => new Promise(resolve => lines.once('line', resolve));

// headers reads a header table of one side as [[name, value], ...].
const headers = (page, side, cls) => page.$$eval(`${side} table.${cls} tr`,
  trs => trs.map(tr => Array.from(tr.children, td => td.textContent)));

async function sideOf(page, side) {
  return {
    meta: await page.textContent(`${side} .meta`),
    requestHeaders: await headers(page, side, 'req-h'),
    responseHeaders: await headers(page, side, 'resp-h'),
    responseBody: await page.textContent(`${side} pre.resp-b`),
  };
}

async function main() {
  const browser = await chromium.launch({
    executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
    headless: true,
    args: ['--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update',
      '--disable-sync', '--no-first-run', '--disable-quic'],
  });
  try {
    const page = await browser.newPage({ viewport: { width: 1400, height: 900 } });
    await page.goto(inspectorURL);
    await page.waitForSelector('#empty');
    console.log('ready');

    const path = (await nextLine()).replace(/^sent /, '');
    const began = Date.now();
    const row = page.locator('#rows tr', { hasText: path }).filter({ has: page.locator('td.status', { hasText: '200' }) });
    await row.first().waitFor({ timeout: 5000 });
    console.log('shown ' + (Date.now() - began));

    await row.first().click();
    await page.locator('#original .meta', { hasText: 'status 200' }).waitFor({ timeout: 5000 });
    const original = await sideOf(page, '#original');

    await page.click('#replay');
    await page.locator('#replayed .meta', { hasText: 'status 200' }).waitFor({ timeout: 5000 });
    const replayed = await sideOf(page, '#replayed');
    await page.screenshot({ path: shot, fullPage: true });
    console.log(JSON.stringify({ original, replayed }));
  } finally {
    await browser.close();
    lines.close();
  }
}

main().catch(err => {
  console.log(JSON.stringify({ error: String(err && err.stack || err) }));
  process.exit(1);
});
