import { startTestApi, type TestApi } from './testing/harness';

interface Document {
  info: { title: string; version: string };
  tags: { name: string }[];
  paths: Record<string, Record<string, { deprecated?: boolean; tags?: string[] }>>;
}

describe('one OpenAPI document per API version', () => {
  let api: TestApi;
  beforeAll(async () => {
    api = await startTestApi({ label: 'api-openapi' });
  });
  afterAll(async () => {
    await api.close();
  });

  const documentOf = async (url: string) => {
    const answer = await api.app.inject({ method: 'GET', url });
    expect(answer.statusCode).toBe(200);
    return answer.json<Document>();
  };
  const operations = (document: Document) => Object.entries(document.paths).flatMap(([path, methods]) => Object.keys(methods).map((method) => `${method} ${path}`));

  it('holds each version in its own document, the unversioned routes in both, every route in one of them', async () => {
    const [v1, v2, all] = await Promise.all([documentOf('/openapi/v1.json'), documentOf('/openapi/v2.json'), documentOf('/docs/json')]);
    expect(v1.info).toMatchObject({ version: '1.0.0', title: 'jobfleet API v1 (deprecated: use v2)' });
    expect(v2.info).toMatchObject({ version: '2.0.0', title: 'jobfleet API v2' });
    const paths1 = Object.keys(v1.paths);
    const paths2 = Object.keys(v2.paths);
    expect(paths1.filter((path) => path.startsWith('/v2/'))).toEqual([]);
    expect(paths2.filter((path) => path.startsWith('/v1/'))).toEqual([]);
    expect(paths2).toEqual(expect.arrayContaining(['/v2/jobs/calendar-sync', '/v2/jobs/calendar-sync/batch', '/v2/jobs/{id}', '/v2/sync/{kind}', '/v2/backups', '/health/ready']));
    expect(paths1).toEqual(expect.arrayContaining(['/v1/jobs/{id}', '/v1/admin/deprecations', '/health/ready']));
    expect(new Set([...operations(v1), ...operations(v2)])).toEqual(new Set(operations(all)));
    // Swagger UI strikes /v1 through.
    expect(Object.values(v1.paths['/v1/jobs/{id}'] ?? {}).map((operation) => operation.deprecated)).toEqual([true]);
    expect(Object.values(v2.paths['/v2/jobs/{id}'] ?? {}).map((operation) => operation.deprecated)).toEqual([undefined]);
    // Each lists the tags its operations use, and only those.
    const used = (document: Document) => new Set(Object.values(document.paths).flatMap((methods) => Object.values(methods).flatMap((operation) => operation.tags ?? [])));
    expect(new Set(v2.tags.map((tag) => tag.name))).toEqual(used(v2));
    expect(v2.tags.map((tag) => tag.name)).not.toContain('connections');
  });

  it('documents /v2 errors as RFC 9457 problems with instance', async () => {
    const v2 = await documentOf('/openapi/v2.json');
    const getJob = v2.paths['/v2/jobs/{id}']?.get as unknown as { responses: Record<string, { content?: Record<string, { schema: { required: string[] } }> }> };
    expect(getJob.responses['404']?.content?.['application/problem+json']?.schema.required).toEqual(['type', 'title', 'status', 'detail', 'instance']);
  });
});
