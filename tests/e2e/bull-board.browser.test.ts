import { QUEUE_NAMES } from '@jobfleet/kinds';
import type { Browser, Page } from 'puppeteer-core';
import { launchChromium, listenForBrowser } from '../support/browser';
import { reservationRequest } from '../support/fixtures';
import { waitFor } from '../support/processes';
import { startTestSystem, type TestSystem } from '../support/system';

const OPERATOR = { username: 'operator', password: 'operator-password-for-the-board' };

/** The little of the browser's globals the page functions touch (the project compiles without the DOM library). */
interface BrowserScope {
  document: {
    body: { innerText: string };
    querySelectorAll(selector: string): Iterable<{ textContent: string | null }>;
  };
}

// Bull Board's job actions are icon buttons whose names show only as a tooltip (Base UI) on hover.
const ACTION_BUTTONS = '[data-base-ui-tooltip-trigger] > button';
const OPEN_TOOLTIPS = '[data-base-ui-portal] [data-open][data-side]';

/** Clicks the job action whose tooltip reads `title`, hovering over each action button to find it. */
async function clickJobAction(page: Page, title: string): Promise<void> {
  for (const button of await page.$$(ACTION_BUTTONS)) {
    await button.hover();
    const named = await page
      .waitForFunction(
        (selector, wanted) => Array.from((globalThis as unknown as BrowserScope).document.querySelectorAll(selector)).some((tip) => tip.textContent?.trim() === wanted),
        { timeout: 2000 },
        OPEN_TOOLTIPS,
        title,
      )
      .then(
        () => true,
        () => false,
      );
    if (named) {
      await button.click();
      return;
    }
  }
  throw new Error(`no job action titled ${title} on ${page.url()}`);
}

/**
 * Bull Board as an operator uses it, in Debian's Chromium, against the whole fleet in this
 * process: real workers take the jobs, the fake Google Calendar refuses or accepts them.
 */
describe('Bull Board in Chromium with real workers', () => {
  let system: TestSystem;
  let origin: string;
  let browser: Browser;

  beforeAll(async () => {
    system = await startTestSystem({ label: 'board-browser', env: { ADMIN_USER: OPERATOR.username, ADMIN_PASSWORD: OPERATOR.password } });
    origin = await listenForBrowser(system.api);
    browser = await launchChromium();
  });
  afterAll(async () => {
    await browser.close();
    await system.close();
  });

  async function operatorPage(credentials: { username: string; password: string } | undefined): Promise<Page> {
    const page = await browser.newPage();
    if (credentials) await page.authenticate(credentials);
    return page;
  }

  const showing = (page: Page, text: string) =>
    page.waitForFunction((wanted) => (globalThis as unknown as BrowserScope).document.body.innerText.includes(wanted), { timeout: 20_000 }, text);

  /** Opens the board with `credentials` (or none): what the API answered to each of the page's requests. */
  async function boardAnswers(credentials: { username: string; password: string } | undefined) {
    const page = await operatorPage(credentials);
    const answers: { path: string; status: number; challenge: string | undefined }[] = [];
    page.on('response', (response) => {
      answers.push({ path: new URL(response.url()).pathname, status: response.status(), challenge: response.headers()['www-authenticate'] });
    });
    try {
      // Chromium answers a challenge with the credentials it was given, if any; refused, it shows
      // the 401 or gives up on the page (a net:: error).
      await page.goto(`${origin}/admin/queues`, { waitUntil: 'networkidle0' }).catch((error: unknown) => {
        if (!String(error).includes('net::ERR_INVALID_AUTH_CREDENTIALS')) throw error;
      });
      return answers;
    } finally {
      await page.close();
    }
  }

  it('refuses the board without credentials and with a wrong password', async () => {
    for (const credentials of [undefined, { ...OPERATOR, password: 'not-the-operator-password' }]) {
      // Nothing of the board, not even its scripts: only the challenge (the browser's favicon request aside).
      const board = (await boardAnswers(credentials)).filter(({ path }) => path.startsWith('/admin/queues'));
      expect(board.length).toBeGreaterThan(0);
      for (const { path, status, challenge } of board) expect({ path, status, basic: challenge?.startsWith('Basic ') }).toEqual({ path: '/admin/queues', status: 401, basic: true });
    }
  });

  it('shows a failed job with its error, retries it from the page, and the worker completes it', async () => {
    const queue = system.queues['calendar-sync'];
    // Google refuses the first request for good (403 forbidden): the job fails without retrying.
    system.calendar.failNext(1, { status: 403, reason: 'forbidden' });
    const enqueued = await system.api.inject({
      method: 'POST',
      url: '/v1/jobs/calendar-sync',
      headers: { authorization: `Bearer ${system.apiKey}`, 'idempotency-key': 'board-retry-1' },
      payload: reservationRequest('res-board-retry'),
    });
    expect(enqueued.statusCode).toBe(202);
    const { jobId } = enqueued.json<{ jobId: string }>();
    await waitFor(async () => (await queue.getJobState(jobId)) === 'failed', { timeoutMs: 20_000, what: 'the job to fail' });
    expect(system.calendar.insertCount()).toBe(0);

    const page = await operatorPage(OPERATOR);
    try {
      const board = await page.goto(`${origin}/admin/queues`, { waitUntil: 'networkidle0' });
      expect(board?.status()).toBe(200);
      for (const name of QUEUE_NAMES) await showing(page, name);

      await page.goto(`${origin}/admin/queues/queue/calendar-sync?status=failed`, { waitUntil: 'networkidle0' });
      await showing(page, jobId);
      await showing(page, 'PermanentError: insert answered HTTP 403 forbidden');

      await clickJobAction(page, 'Retry');
      await showing(page, 'Are you sure that you want to retry this job?');
      await page.locator('::-p-xpath(//button[normalize-space(.)="Confirm"])').click();
      await waitFor(async () => (await queue.getJobState(jobId)) === 'completed', { timeoutMs: 20_000, what: 'the retried job to complete' });
      expect(system.calendar.insertCount()).toBe(1);

      await page.goto(`${origin}/admin/queues/queue/calendar-sync?status=completed`, { waitUntil: 'networkidle0' });
      await showing(page, jobId);
    } finally {
      await page.close();
    }
  });
});
