import { Writable } from 'node:stream';
import { DependencyUnavailableError } from '@jobfleet/contracts';
import { createLogger } from '@jobfleet/observability';
import Fastify, { type FastifyBaseLogger } from 'fastify';
import { z } from 'zod';
import { HttpProblem, installProblemHandlers, parseOrThrow } from './problem';

describe('problem+json answers', () => {
  const lines: string[] = [];
  const logger: FastifyBaseLogger = createLogger({
    level: 'info',
    serviceName: 'problem-test',
    destination: new Writable({
      write: (chunk: Buffer, _enc, done) => {
        lines.push(chunk.toString());
        done();
      },
    }),
  });
  const app = Fastify({ loggerInstance: logger });
  installProblemHandlers(app);
  app.get('/boom', async () => {
    throw new Error('connection string postgres://secret@db');
  });
  app.get('/conflict', async () => {
    throw new HttpProblem(409, 'busy', { headers: { 'retry-after': '1' } });
  });
  app.get('/zod', async () => parseOrThrow(z.strictObject({ a: z.number() }), { a: 'x', b: 1 }, 'The thing'));
  app.get('/down', async () => {
    throw new DependencyUnavailableError('postgres', 'ECONNREFUSED');
  });
  afterAll(() => app.close());

  it('hides an unexpected error behind a 500 and logs it with its stack', async () => {
    const answer = await app.inject('/boom');
    expect(answer.statusCode).toBe(500);
    expect(answer.headers['content-type']).toMatch(/^application\/problem\+json/);
    expect(answer.body).not.toContain('secret');
    expect(answer.json()).toEqual({ type: 'about:blank', title: 'Internal Server Error', status: 500, detail: expect.any(String) });
    const logged = lines.map((l) => JSON.parse(l)).find((l) => l.level === 'error');
    expect(logged.err.stack).toMatch(/connection string[\s\S]*problem\.test\.ts/);
  });

  it('passes an HttpProblem through with its headers', async () => {
    const answer = await app.inject('/conflict');
    expect(answer.statusCode).toBe(409);
    expect(answer.headers['retry-after']).toBe('1');
    expect(answer.json()).toEqual({ type: 'about:blank', title: 'Conflict', status: 409, detail: 'busy' });
  });

  it('lists zod issues with dotted paths, one per unknown field', async () => {
    const answer = await app.inject('/zod');
    expect(answer.statusCode).toBe(400);
    expect(answer.json()).toMatchObject({ type: '/problems/validation', detail: 'The thing is invalid' });
    expect(answer.json().errors).toEqual([
      { path: 'a', message: expect.any(String) },
      { path: 'b', message: 'unknown field' },
    ]);
  });

  it('answers an unavailable dependency with 503 and Retry-After', async () => {
    const answer = await app.inject('/down');
    expect(answer.statusCode).toBe(503);
    expect(answer.headers['retry-after']).toMatch(/^\d+$/);
    expect(answer.json().detail).toMatch(/^postgres is unavailable/);
  });

  it('answers an unknown route with a 404 problem', async () => {
    const answer = await app.inject('/nowhere?x=1');
    expect(answer.statusCode).toBe(404);
    expect(answer.json()).toMatchObject({ status: 404, detail: 'No route GET /nowhere' });
  });
});
