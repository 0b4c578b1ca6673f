import fc from 'fast-check';
import type { LightMyRequestResponse } from 'fastify';
import { createLogger } from '@jobfleet/observability';
import { ADMIN_PASSWORD, reservation, startTestApi } from '../../apps/api/src/testing/harness';
import { operationsOf, requestsFor, strayRequests, type FuzzRequest, type KnownValues, type OpenApiDocument, type Operation } from './requests';

/**
 * Property-based fuzzing of the whole API through inject: every operation of its OpenAPI documents,
 * one per version (and Bull Board's read routes, which the documents hide) gets requests derived from its
 * schemas, then mutated: wrong types, edge numbers, NUL and lone surrogates, raw bad bytes in
 * paths and queries, odd headers and credentials, bad JSON, wrong methods. Whatever comes in,
 * the API answers below 500, in time, and every 4xx is a problem+json body.
 *
 * FUZZ_RUNS (default 3000, `npm run fuzz`: 20000) is the number of cases over all operations;
 * FUZZ_SEED replays a run (each failure prints its seed).
 */
const RUNS = Number(process.env.FUZZ_RUNS ?? 3000);
const SEED = process.env.FUZZ_SEED === undefined ? Date.now() % 2 ** 31 : Number(process.env.FUZZ_SEED);
const INJECT_TIMEOUT_MS = 10_000;

// Bull Board answers through the same edge; only its read routes, so the fuzz never empties a queue.
const BOARD_OPERATIONS: Operation[] = [
  {
    method: 'GET',
    path: '/admin/queues/api/queues',
    parameters: ['activeQueue', 'status', 'page', 'jobsPerPage'].map((name) => ({ in: 'query', name })),
    body: undefined,
    security: ['adminBasic'],
  },
  ...['/{queueName}/{jobId}', '/{queueName}/{jobId}/logs', '/{queueName}/metrics'].map((suffix) => ({
    method: 'GET',
    path: `/admin/queues/api/queues${suffix}`,
    parameters: ['queueName', 'jobId'].filter((name) => suffix.includes(name)).map((name) => ({ in: 'path' as const, name })),
    body: undefined,
    security: ['adminBasic'],
  })),
];

// What the server logs at warn and above, so that a 5xx can be reported with its cause.
const logged: string[] = [];
const logger = createLogger({ level: 'warn', serviceName: 'api-fuzz', destination: { write: (line: string) => void logged.push(line) } });
const api = await startTestApi({ label: 'api-fuzz', logger });
const accepted = await api.post(reservation('res-fuzz'));
const { jobId } = accepted.json<{ jobId: string }>();
// Each version's own document, as clients read it; the unversioned routes, in both, are fuzzed once.
const versionDocuments = await Promise.all(['/openapi/v1.json', '/openapi/v2.json'].map(async (url) => (await api.app.inject({ method: 'GET', url })).json<OpenApiDocument>()));
const documented = new Map(versionDocuments.flatMap(operationsOf).map((operation) => [`${operation.method} ${operation.path}`, operation]));
const operations = [...documented.values(), ...BOARD_OPERATIONS];
const credentials = { keys: Object.values(api.keys), operator: { user: api.config.api.adminUser, password: ADMIN_PASSWORD } };
const KNOWN: Readonly<Record<string, readonly string[]>> = {
  kind: ['reservation'],
  entityId: ['res-fuzz'],
  cuit: ['30712345671', '20123456786'],
  queueName: ['calendar-sync', 'afip-sync', 'backup'],
  activeQueue: ['calendar-sync'],
  status: ['latest', 'waiting', 'failed'],
  page: ['1', '2'],
  jobsPerPage: ['10', '50'],
  jobId: [jobId],
};
// An `id` is a tenant, a job, a reservation or a backup run depending on the route; a `kind` is a
// queue on the job admin routes and a sync kind on the sync ones.
const known: KnownValues = ({ path }, parameter) => {
  if (parameter === 'kind' && path.includes('/jobs/')) return ['calendar-sync'];
  if (parameter !== 'id') return KNOWN[parameter] ?? [];
  if (path.includes('/tenants/')) return ['acme', 'globex'];
  if (path.includes('/reservations/')) return ['res-fuzz'];
  if (path.includes('/backups/')) return ['5b1d8c34-1f0e-4a1e-9c1e-1d7c8f2a9b10'];
  return [jobId];
};
const hints = { timeZone: ['UTC', 'America/Argentina/Buenos_Aires'], calendarId: ['restaurant@example.com'] };
// The runs go where the inputs are: an operation's share grows with its parameters and its body.
const inputsOf = (operation: Operation) => 1 + 2 * operation.parameters.length + (operation.body === undefined ? 0 : 4);
const STRAY_INPUTS = 2;
const totalInputs = operations.reduce((sum, operation) => sum + inputsOf(operation), STRAY_INPUTS);
const runsFor = (inputs: number) => Math.ceil((RUNS * inputs) / totalInputs);

function within(answer: Promise<LightMyRequestResponse>, request: FuzzRequest): Promise<LightMyRequestResponse> {
  let timer: NodeJS.Timeout | undefined;
  const hang = new Promise<never>((_resolve, reject) => {
    timer = setTimeout(() => reject(new Error(`no answer within ${INJECT_TIMEOUT_MS} ms: ${request.method} ${request.url}`)), INJECT_TIMEOUT_MS);
  });
  return Promise.race([answer, hang]).finally(() => clearTimeout(timer));
}

interface LoggedError {
  message?: string;
  cause?: LoggedError;
}

/** What the server logged for the request just made: its error's innermost cause, first line. */
function loggedCause(): string {
  const lines = logged.splice(0).map((line) => JSON.parse(line) as { msg?: string; err?: LoggedError });
  const last = lines.at(-1);
  let error = last?.err;
  while (error?.cause?.message !== undefined) error = error.cause;
  // Numbers in a message (a value out of range) do not make another failure.
  const message = error?.message ?? last?.msg ?? 'nothing logged';
  return (message.split('\n')[0] ?? '').replace(/"\d+"/g, '"N"').slice(0, 200);
}

/** What is wrong with an answer of 400 or more, if anything: every error is a problem+json body. */
function problemViolation(answer: LightMyRequestResponse, method: string): string | undefined {
  if (answer.statusCode < 400) return undefined;
  const type = answer.headers['content-type'];
  if (typeof type !== 'string' || !type.startsWith('application/problem+json')) return `not a problem: content-type ${String(type)}`;
  if (answer.statusCode === 405 && answer.headers.allow === undefined) return '405 without Allow';
  // A HEAD answer has the headers of the GET and no body.
  if (method === 'HEAD') return undefined;
  let body: Partial<Record<string, unknown>>;
  try {
    body = answer.json();
  } catch {
    return 'a problem body that is not JSON';
  }
  const fields = ['type', 'title', 'detail'].filter((field) => typeof body[field] !== 'string');
  if (body.status !== answer.statusCode) fields.push('status');
  return fields.length === 0 ? undefined : `problem without ${fields.join(', ')}`;
}

afterAll(async () => {
  await api.close();
});

describe(`fuzzing the API from its OpenAPI document (${RUNS} cases, seed ${SEED})`, () => {
  const cases = [
    ...operations.map((operation) => ({
      name: `${operation.method} ${operation.path}`,
      requests: () => requestsFor(operation, credentials, known, hints),
      runs: runsFor(inputsOf(operation)),
    })),
    { name: 'stray paths', requests: () => strayRequests(credentials), runs: runsFor(STRAY_INPUTS) },
  ].map(({ name, requests, runs }, index) => [name, requests, runs, index] as const);

  it.each(cases)('%s answers below 500, in time, with a problem for every error', async (name, requests, runs, index) => {
    // Every distinct failure (status, method, what was wrong) with the first request that showed
    // it. The run goes on past one, so that a single run names them all; a hang stops it.
    const failures = new Map<string, FuzzRequest>();
    await fc.assert(
      fc.asyncProperty(requests(), async (request) => {
        logged.length = 0;
        const answer = await within(api.app.inject({ method: request.method as 'GET', url: request.url, headers: request.headers, payload: request.payload }), request);
        const failure = answer.statusCode >= 500 ? `server error: ${loggedCause()}` : problemViolation(answer, request.method);
        const key = `${answer.statusCode} ${request.method} on ${name}: ${failure ?? ''}`;
        if (failure !== undefined && !failures.has(key)) failures.set(key, request);
      }),
      // One seed per run; each operation draws its own sequence from it.
      { numRuns: runs, seed: SEED + index },
    );
    const found = [...failures].map(([key, request]) => `${key}\n    e.g. ${JSON.stringify(request).slice(0, 600)}`);
    if (found.length > 0) throw new Error(`${found.length} failures (replay with FUZZ_SEED=${SEED}):\n  ${found.join('\n  ')}`);
  }, 60_000 + RUNS * 20);
});
