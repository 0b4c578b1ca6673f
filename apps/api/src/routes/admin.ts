import { createBullBoard } from '@bull-board/api';
import { BullMQAdapter } from '@bull-board/api/bullMQAdapter';
import { FastifyAdapter } from '@bull-board/fastify';
import type { Queue } from 'bullmq';
import type { FastifyInstance } from 'fastify';
import { z } from 'zod';
import { plainText } from '../params';
import type { Auth } from '../plugins/auth';
import { parseOrThrow, PROBLEM_CONTENT_TYPE, replaceWithProblem, sendError } from '../problem';
import { usePagePolicy } from '../security-headers';

const ADMIN_QUEUES_PATH = '/admin/queues';

// Bull Board's page links the IBM Plex fonts from Google Fonts and styles its loading screen inline.
const BOARD_SOURCES = {
  'style-src': ["'unsafe-inline'", 'https://fonts.googleapis.com'],
  'font-src': ['https://fonts.gstatic.com'],
};

function percentDecodable(value: string): boolean {
  try {
    decodeURIComponent(value);
    return true;
  } catch {
    return false;
  }
}

// Bull Board percent-decodes some query values a second time (activeQueue) and splits its
// validation messages, which quote the value, on NUL: either throws inside it, a 500. So a query
// value must be plain text that survives another decoding. Its page and page size become a Redis
// range, where 1e308 (an integer to it) fails too: they are whole numbers of a few digits.
const boardQueryValue = plainText(1024).refine(percentDecodable, 'must stay valid when percent-decoded again');
const boardQuery = z
  .object({
    page: z.string().regex(/^\d{0,6}$/, 'a page number: at most 6 digits').optional(),
    jobsPerPage: z.string().regex(/^\d{0,3}$/, 'a page size: at most 3 digits').optional(),
  })
  .catchall(z.union([boardQueryValue, z.array(boardQueryValue)]));

/** Bull Board's error body: a translation key (with its options), or the message of what was thrown. */
const boardError = z.object({
  error: z.object({ key: z.string(), options: z.record(z.string(), z.unknown()).optional() }).optional(),
  message: z.string().optional(),
});

function boardErrorDetail(payload: unknown): string {
  const parsed = boardError.safeParse(typeof payload === 'string' ? safeJson(payload) : undefined);
  const { error, message } = parsed.success ? parsed.data : {};
  const options = Object.entries(error?.options ?? {}).map(([name, value]) => `${name}: ${JSON.stringify(value)}`);
  const reason = message ?? error?.key ?? 'the request was refused';
  return `Bull Board: ${reason}${options.length > 0 ? ` (${options.join(', ')})` : ''}`;
}

function safeJson(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return undefined;
  }
}

/** Bull Board, which has no auth of its own, behind an admin API key or the admin Basic credentials. */
export async function registerAdminRoutes(
  app: FastifyInstance,
  { queues, auth }: { queues: Readonly<Record<string, Queue>>; auth: Auth },
): Promise<void> {
  const serverAdapter = new FastifyAdapter();
  serverAdapter.setBasePath(ADMIN_QUEUES_PATH);
  createBullBoard({ queues: Object.values(queues).map((queue) => new BullMQAdapter(queue)), serverAdapter });

  await app.register(async (admin) => {
    usePagePolicy(admin, BOARD_SOURCES);
    admin.addHook('onRequest', async (request, reply) => {
      try {
        await auth.requireOperator(request);
        parseOrThrow(boardQuery, request.query, 'The query string');
      } catch (error) {
        // Bull Board installs its own error handler for its routes, so answer here rather than throw.
        return sendError(request, reply, error);
      }
    });
    // Bull Board answers its errors (unknown queue or job, a refused query, whatever its handlers
    // throw) as JSON of its own: they leave as problems like every other error of the API.
    admin.addHook('onSend', async (request, reply, payload) => {
      const type = reply.getHeader('content-type');
      if (reply.statusCode < 400 || (typeof type === 'string' && type.startsWith(PROBLEM_CONTENT_TYPE))) return payload;
      return replaceWithProblem(request, reply, boardErrorDetail(payload));
    });
    await admin.register(serverAdapter.registerPlugin(), { prefix: ADMIN_QUEUES_PATH });
  });
}
