import type { Config } from '@jobfleet/config';
import { QUEUE_INTAKE, type AfipSyncRequest, type BackupRequest, type CalendarSyncRequest, type QueueName } from '@jobfleet/contracts';
import { afipIssuerRepository, googleConnectionRepository, mayWriteCalendar, type Db } from '@jobfleet/db';
import { callPostgres as pg } from './dependencies';
import { HttpProblem } from './problem';

export interface AdmissionContext {
  config: Config;
  db: Db;
  tenantId: string;
}

/**
 * What a valid body must also satisfy before its job is queued, judged against the tenant and the
 * deployment: a refusal is a 4xx and nothing is enqueued. The worker checks ownership again.
 */
type Admission = (context: AdmissionContext, body: unknown) => Promise<void>;

const notOwned = (detail: string) => new HttpProblem(403, detail, { type: '/problems/connection-not-owned' });

async function admitInvoice({ db, tenantId }: AdmissionContext, request: AfipSyncRequest): Promise<void> {
  if (!(await pg(() => afipIssuerRepository.isOwnedBy(db, tenantId, request.cuit)))) {
    throw notOwned(`Tenant "${tenantId}" has no AFIP issuer with CUIT ${request.cuit}`);
  }
}

async function admitReservation({ db, tenantId }: AdmissionContext, request: CalendarSyncRequest): Promise<void> {
  const access = await pg(() => googleConnectionRepository.access(db, tenantId));
  if (access === undefined) throw notOwned(`Tenant "${tenantId}" has no Google Calendar connection`);
  if (!mayWriteCalendar(access, request.calendarId)) {
    throw notOwned(`Tenant "${tenantId}" may not write to calendar "${request.calendarId}"`);
  }
}

/** The definition must exist on this deployment, and be checkable as asked. */
async function admitBackup({ config }: AdmissionContext, request: BackupRequest): Promise<void> {
  const { definitions, scratchServerUrl } = config.backup;
  if (!definitions.some((d) => d.name === request.definition)) {
    const known = definitions.map((d) => d.name).join(', ') || 'none';
    throw new HttpProblem(422, `No backup definition "${request.definition}" is configured (known: ${known})`, {
      type: '/problems/unknown-backup-definition',
    });
  }
  if (request.restoreCheck === 'full' && scratchServerUrl === undefined) {
    throw new HttpProblem(422, 'A full restore check needs BACKUP_RESTORE_SCRATCH_URL, which this deployment does not set', {
      type: '/problems/restore-check-unavailable',
    });
  }
}

// Each takes the body its queue's schema produced; parsing again narrows the erased type.
export const ADMISSIONS = {
  'calendar-sync': (context, body) => admitReservation(context, QUEUE_INTAKE['calendar-sync'].requestSchema.parse(body)),
  'afip-sync': (context, body) => admitInvoice(context, QUEUE_INTAKE['afip-sync'].requestSchema.parse(body)),
  backup: (context, body) => admitBackup(context, QUEUE_INTAKE.backup.requestSchema.parse(body)),
} satisfies Record<QueueName, Admission>;
