/**
 * The baseline server of bench/http-enqueue.bench.ts, run by it as a process of its own: the least
 * an HTTP enqueue can be, one Fastify route that adds the body to a BullMQ queue and answers 202.
 * No auth, validation, idempotency, rate limits or logging. Reads REDIS_URL, QUEUE_PREFIX and PORT.
 */
import { Queue } from 'bullmq';
import Fastify from 'fastify';
import { Redis } from 'ioredis';

const redisUrl = process.env.REDIS_URL ?? 'redis://127.0.0.1:6379';
const prefix = process.env.QUEUE_PREFIX;
const port = Number(process.env.PORT);
if (prefix === undefined || !Number.isInteger(port)) throw new Error('QUEUE_PREFIX and PORT must be set');

const connection = new Redis(redisUrl);
const queue = new Queue('calendar-sync', { connection, prefix });
await queue.waitUntilReady();

const app = Fastify();
app.post('/v1/jobs/calendar-sync', async (request, reply) => {
  const job = await queue.add('calendar-sync', request.body);
  return reply.code(202).send({ jobId: job.id });
});
await app.listen({ host: '127.0.0.1', port });

process.once('SIGTERM', () => {
  void app
    .close()
    .then(() => queue.close())
    .finally(() => connection.disconnect());
});
