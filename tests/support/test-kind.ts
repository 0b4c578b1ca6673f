import { defineJobKind, jobDataSchema, parsePayload, type KindIntake } from '@jobfleet/kinds';
import { z } from 'zod';

const testRequest = z.strictObject({ id: z.string().regex(/^[\w-]{1,64}$/) });
type TestRequest = z.output<typeof testRequest>;

/**
 * A job kind of a test, served beside the registry's: requests are `{ "id": … }` (default key
 * `<name>:<id>`), it keeps no sync status, and `run` does each job's work.
 */
export function defineTestKind<const Name extends string>(name: Name, run: (tenantId: string, request: TestRequest) => Promise<Record<string, unknown>>) {
  const intake: KindIntake<TestRequest> = {
    summary: `${name} (test kind)`,
    entityId: (request) => request.id,
    version: () => 0,
    defaultIdempotencyKey: (request) => `${name}:${request.id}`,
    defaultKeyDescription: `\`${name}:<id>\``,
    jobName: () => name,
    requiredScope: 'jobs:write',
  };
  const jobSchema = jobDataSchema(testRequest);
  return defineJobKind({
    name,
    requestSchema: testRequest,
    syncKind: null,
    intake,
    attemptTimeoutMs: () => 10_000,
    worker: () =>
      Promise.resolve({
        start: () =>
          Promise.resolve({
            processor: async (job) => {
              const { tenantId, request } = parsePayload(jobSchema, job.data);
              return run(tenantId, request);
            },
          }),
      }),
  });
}
