/** The tenant a job belongs to (`data.tenantId`), if its data names one. */
export function tenantOf(data: unknown): string | undefined {
  return typeof data === 'object' && data !== null && 'tenantId' in data && typeof data.tenantId === 'string' ? data.tenantId : undefined;
}
