import { and, desc, eq, lt, type SQL } from 'drizzle-orm';
import type { Db } from './client';
import { adminAudit } from './schema';

/** One action to record: who did what to which tenant, with the filter of a bulk action. */
export interface AdminAuditEntry {
  /** "api-key:<id>", "operator:<user>", "cli:<user>" or "system:<component>". */
  actor: string;
  actorTenantId?: string | null;
  action: string;
  tenantId?: string | null;
  target?: Record<string, unknown>;
  filter?: Record<string, unknown> | null;
  detail?: Record<string, unknown>;
}

export interface AdminAuditRow extends Required<Omit<AdminAuditEntry, 'actorTenantId' | 'tenantId' | 'filter'>> {
  id: number;
  at: Date;
  actorTenantId: string | null;
  tenantId: string | null;
  filter: Record<string, unknown> | null;
}

export interface AdminAuditQuery {
  tenantId?: string;
  action?: string;
  /** Keyset pagination: rows with an id below this one (newest first). */
  beforeId?: number;
  limit: number;
}

export const adminAuditRepository = {
  /**
   * Appends the entries in one statement. Pass the transaction of the action itself where there is
   * one, so an action and its record commit together.
   */
  async append(db: Db, entries: readonly AdminAuditEntry[]): Promise<void> {
    if (entries.length === 0) return;
    await db.insert(adminAudit).values(
      entries.map((entry) => ({
        actor: entry.actor,
        actorTenantId: entry.actorTenantId ?? null,
        action: entry.action,
        tenantId: entry.tenantId ?? null,
        target: entry.target ?? {},
        filter: entry.filter ?? null,
        detail: entry.detail ?? {},
      })),
    );
  },

  /** Newest first. */
  async list(db: Db, query: AdminAuditQuery): Promise<AdminAuditRow[]> {
    const conditions: SQL[] = [];
    if (query.tenantId !== undefined) conditions.push(eq(adminAudit.tenantId, query.tenantId));
    if (query.action !== undefined) conditions.push(eq(adminAudit.action, query.action));
    if (query.beforeId !== undefined) conditions.push(lt(adminAudit.id, query.beforeId));
    const rows = await db
      .select()
      .from(adminAudit)
      .where(conditions.length === 0 ? undefined : and(...conditions))
      .orderBy(desc(adminAudit.id))
      .limit(query.limit);
    return rows.map((row) => ({
      ...row,
      target: row.target as Record<string, unknown>,
      filter: row.filter as Record<string, unknown> | null,
      detail: row.detail as Record<string, unknown>,
    }));
  },
};
