import { createBullBoard } from '@bull-board/api';
import { BullMQAdapter } from '@bull-board/api/bullMQAdapter';
import { FastifyAdapter } from '@bull-board/fastify';
import type { Queue } from 'bullmq';
import type { FastifyInstance } from 'fastify';
import type { Auth } from '../plugins/auth';
import { sendError } from '../problem';
import { usePagePolicy } from '../security-headers';

const ADMIN_QUEUES_PATH = '/admin/queues';

// Bull Board's page links the IBM Plex fonts from Google Fonts and styles its loading screen inline.
const BOARD_SOURCES = {
  'style-src': ["'unsafe-inline'", 'https://fonts.googleapis.com'],
  'font-src': ['https://fonts.gstatic.com'],
};

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
      } catch (error) {
        // Bull Board installs its own error handler for its routes, so answer here rather than throw.
        return sendError(request, reply, error);
      }
    });
    await admin.register(serverAdapter.registerPlugin(), { prefix: ADMIN_QUEUES_PATH });
  });
}
