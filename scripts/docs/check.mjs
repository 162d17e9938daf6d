// `make docs-check`: load every page of _site/ in headless Chromium and fail on what a reader would hit.
//   * a console error or an uncaught exception on any page;
//   * a local link to a missing page or to a missing #anchor, a local request that fails, an image that does not load;
//   * show_doc output not rendered as documentation (the API pages need their signature blocks and source links);
//   * search that finds nothing for a word every reader would try.
// Usage: node scripts/docs/check.mjs [_site] [--chromium /usr/bin/chromium]
import http from 'node:http';
import fs from 'node:fs';
import path from 'node:path';
import puppeteer from 'puppeteer-core';

const args = process.argv.slice(2);
const site = path.resolve(args.find(a => !a.startsWith('--') && args[args.indexOf(a) - 1] !== '--chromium') || '_site');
const chromium = args.includes('--chromium') ? args[args.indexOf('--chromium') + 1] : '/usr/bin/chromium';
const TYPES = {'.html': 'text/html', '.js': 'text/javascript', '.css': 'text/css', '.png': 'image/png', '.svg': 'image/svg+xml',
               '.json': 'application/json', '.woff': 'font/woff', '.woff2': 'font/woff2', '.md': 'text/markdown'};

// a static file server for _site (search runs in a web worker, which file:// pages may not start)
const server = http.createServer((req, res) => {
  const file = path.join(site, decodeURIComponent(new URL(req.url, 'http://x').pathname));
  if (!file.startsWith(site) || !fs.existsSync(file) || fs.statSync(file).isDirectory()) { res.writeHead(404); return res.end(); }
  res.writeHead(200, {'Content-Type': TYPES[path.extname(file)] || 'application/octet-stream'});
  fs.createReadStream(file).pipe(res);
}).listen(0, '127.0.0.1');
await new Promise(r => server.on('listening', r));
const base = `http://127.0.0.1:${server.address().port}`;

const pages = fs.readdirSync(site, {recursive: true}).filter(f => f.endsWith('.html') && !f.startsWith('assets')).sort();
const ids = f => new Set([...fs.readFileSync(path.join(site, f), 'utf8').matchAll(/\bid="([^"]+)"/g)].map(m => m[1]));
const idCache = new Map(), problems = [];
const browser = await puppeteer.launch({executablePath: chromium, headless: true, args: ['--no-sandbox', '--disable-gpu']});
const page = await browser.newPage();
let current = '';
page.on('console', m => { if (m.type() === 'error' && (m.location().url || base).startsWith(base) && !/ERR_BLOCKED_BY_CLIENT/.test(m.text())) problems.push(`${current}: console error: ${m.text().slice(0, 200)}`); });
page.on('pageerror', e => problems.push(`${current}: exception: ${e.message.slice(0, 200)}`));
page.on('requestfailed', r => { if (r.url().startsWith(base)) problems.push(`${current}: request failed: ${r.url()}`); });
page.on('response', r => { if (r.url().startsWith(base) && r.status() >= 400) problems.push(`${current}: HTTP ${r.status()}: ${r.url()}`); });
await page.setRequestInterception(true);   // a reader offline: nothing outside the site may be needed
page.on('request', r => r.url().startsWith(base) || r.url().startsWith('data:') ? r.continue() : r.abort('blockedbyclient'));

for (const f of pages) {
  current = f;
  await page.goto(`${base}/${f}`, {waitUntil: 'networkidle0', timeout: 60000});
  const found = await page.evaluate(() => ({
    images: [...document.images].filter(i => !i.complete || i.naturalWidth === 0).map(i => i.getAttribute('src')),
    links: [...document.querySelectorAll('a[href]')].map(a => a.href).filter(h => h.startsWith(location.origin)),
    showdoc: document.querySelectorAll('a.nbdev-source').length,
  }));
  for (const src of found.images) problems.push(`${f}: image does not load: ${src}`);
  for (const href of found.links) {
    const u = new URL(href), target = decodeURIComponent(u.pathname).replace(/^\//, '') || 'index.html';
    if (!fs.existsSync(path.join(site, target))) { problems.push(`${f}: broken link: ${target}`); continue; }
    if (!u.hash || !target.endsWith('.html')) continue;
    if (!idCache.has(target)) idCache.set(target, ids(target));
    if (!idCache.get(target).has(decodeURIComponent(u.hash.slice(1)))) problems.push(`${f}: missing anchor: ${target}${u.hash}`);
  }
  if (['stats.html', 'core.html', 'patching.html', 'model.html'].includes(f) && found.showdoc === 0)
    problems.push(`${f}: no show_doc block rendered`);
}

// search: the built-in index, in the browser, offline
current = 'search';
await page.goto(`${base}/index.html`, {waitUntil: 'networkidle0'});
await page.click('input.md-search__input');
await page.type('input.md-search__input', 'bootstrap', {delay: 30});
const hits = await page.waitForSelector('.md-search-result__item', {timeout: 15000}).then(
  () => page.$$eval('.md-search-result__item', els => els.length), () => 0);
if (hits === 0) problems.push('search: no result for "bootstrap"');

await browser.close(); server.close();
console.log(`docs-check: ${pages.length} pages, ${hits} search results for "bootstrap", ${problems.length} problem(s)`);
for (const p of problems.slice(0, 50)) console.log('  ' + p);
process.exit(problems.length ? 1 : 0);
