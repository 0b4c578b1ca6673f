/** The tenant a job belongs to (`data.tenantId`), if its data names one. */
export function tenantOf(data: unknown): string | undefined {
  return typeof data === 'object' && data !== null && 'tenantId' in data && typeof data.tenantId === 'string' ? data.tenantId : undefined;
}

/** The API request that enqueued a job (`data.requestId`), if its data names one. */
export function requestIdOf(data: unknown): string | undefined {
  return typeof data === 'object' && data !== null && 'requestId' in data && typeof data.requestId === 'string' ? data.requestId : undefined;
}
