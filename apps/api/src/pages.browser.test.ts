import type { Browser, Page } from 'puppeteer-core';
import { launchChromium, listenForBrowser } from '../../../tests/support/browser';
import { ADMIN_PASSWORD, reservation, startTestApi, type TestApi } from './testing/harness';

interface PageReport {
  violations: string[];
  consoleErrors: string[];
  pageErrors: string[];
}

/** The little of the browser's globals these tests touch (the project compiles without the DOM library); functions run in the page cast globalThis to it. */
interface BrowserScope {
  cspViolations: string[];
  document: {
    addEventListener(type: 'securitypolicyviolation', listener: (event: { violatedDirective: string; blockedURI: string; sourceFile: string; lineNumber: number }) => void): void;
    body: { innerText: string };
  };
}

/**
 * The pages we serve, loaded by a real browser under the CSP the API sends: each must render and
 * report no violation (a blocked script, style, font, image or fetch).
 */
describe('the docs and Bull Board in Chromium', () => {
  let api: TestApi;
  let origin: string;
  let browser: Browser;

  beforeAll(async () => {
    api = await startTestApi({ label: 'api-pages' });
    origin = await listenForBrowser(api.app);
    browser = await launchChromium();
  });
  afterAll(async () => {
    await browser.close();
    await api.close();
  });

  /** Opens `path` and records what the page reports until `rendered` holds. */
  async function visit(path: string, rendered: (page: Page) => Promise<unknown>, credentials?: { username: string; password: string }): Promise<PageReport> {
    const page = await browser.newPage();
    const report: PageReport = { violations: [], consoleErrors: [], pageErrors: [] };
    page.on('console', (message) => {
      if (message.type() === 'error') report.consoleErrors.push(message.text());
    });
    page.on('pageerror', (error) => report.pageErrors.push(String(error)));
    // Requests leave the machine never: another origin (Bull Board's Google Fonts) gets an empty
    // answer here, after the CSP allowed the request (a blocked one never reaches this point).
    await page.setRequestInterception(true);
    page.on('request', (request) => {
      if (request.url().startsWith(origin) || request.url().startsWith('data:')) void request.continue();
      else void request.respond({ status: 200, contentType: 'text/css', body: '' });
    });
    await page.evaluateOnNewDocument(() => {
      const scope = globalThis as unknown as BrowserScope;
      scope.cspViolations = [];
      scope.document.addEventListener('securitypolicyviolation', (event) => {
        scope.cspViolations.push(`${event.violatedDirective} blocked ${event.blockedURI || 'inline'} (${event.sourceFile}:${event.lineNumber})`);
      });
    });
    if (credentials !== undefined) await page.authenticate(credentials);
    try {
      await page.goto(`${origin}${path}`, { waitUntil: 'networkidle0' });
      await rendered(page);
      report.violations = await page.evaluate(() => (globalThis as unknown as BrowserScope).cspViolations);
    } finally {
      await page.close();
    }
    return report;
  }

  it('renders the OpenAPI document in Swagger UI at /docs, v2 first, without a CSP violation', async () => {
    const report = await visit('/docs', async (page) => {
      await page.waitForSelector('.swagger-ui .info .title', { timeout: 15_000 });
      // The version picker loads /openapi/v2.json first.
      await page.waitForFunction(() => (globalThis as unknown as BrowserScope).document.body.innerText.includes('jobfleet API v2'), { timeout: 15_000 });
      // An operation opened shows its parameters, schemas and highlighted examples too.
      await page.click('.opblock-summary');
      await page.waitForSelector('.opblock-body .responses-wrapper', { timeout: 15_000 });
    });
    expect(report).toEqual({ violations: [], consoleErrors: [], pageErrors: [] });
  });

  it('renders Bull Board with its queues and a queue with its job (Basic credentials) without a CSP violation', async () => {
    expect((await api.post(reservation('res-in-browser'))).statusCode).toBe(202);
    const operator = { username: api.config.api.adminUser, password: ADMIN_PASSWORD };
    const showing = (text: string) => (page: Page) => page.waitForFunction((wanted) => (globalThis as unknown as BrowserScope).document.body.innerText.includes(wanted), { timeout: 15_000 }, text);
    expect(await visit('/admin/queues', showing('calendar-sync'), operator)).toEqual({ violations: [], consoleErrors: [], pageErrors: [] });
    expect(await visit('/admin/queues/queue/calendar-sync?status=prioritized', showing('res-in-browser'), operator)).toEqual({
      violations: [],
      consoleErrors: [],
      pageErrors: [],
    });
  });
});
