import { backupJobSchema, backupRequestSchema } from '@jobfleet/contracts';
import { AdmissionRefusal, defineJobKind } from '../define';

/**
 * A backup attempt is bounded by its own deadlines (dump, then restore check, each
 * BACKUP_TIMEOUT_SECONDS); the worker's bound only catches a run that ignores them.
 */
const BACKUP_ATTEMPT_SLACK_MS = 5 * 60_000;

/** PostgreSQL dumps on a schedule (job schedulers) and on demand; runs keep their own `backups` rows. */
export const backup = defineJobKind({
  name: 'backup',
  requestSchema: backupRequestSchema,
  // Scheduled jobs carry no tenant: they come from the definition's job scheduler.
  jobSchema: backupJobSchema,
  syncKind: null,
  intake: {
    summary: 'Run a configured backup definition now (fleet:admin scope)',
    entityId: (request) => request.definition,
    version: () => 0,
    // A resend within the same minute is the same request; send a key to ask for two runs in one minute.
    defaultIdempotencyKey: (request) => `backup:${request.definition}:${new Date().toISOString().slice(0, 16)}`,
    defaultKeyDescription: '`backup:<definition>:<UTC minute, e.g. 2026-11-23T03:00>`',
    jobName: (request) => (request.action === 'verify' ? 'on-demand-verify' : 'on-demand'),
    // A dump holds every tenant's data: an operator's call, not a tenant's.
    requiredScope: 'fleet:admin',
    // The schedules keep running; an extra dump is the first thing a loaded fleet can do without.
    lowPriority: true,
    // The definition must exist on this deployment, and be checkable as asked.
    admit({ config }, request) {
      const { definitions, scratchServerUrl } = config.backup;
      if (!definitions.some((d) => d.name === request.definition)) {
        const known = definitions.map((d) => d.name).join(', ') || 'none';
        return Promise.reject(new AdmissionRefusal(422, '/problems/unknown-backup-definition', `No backup definition "${request.definition}" is configured (known: ${known})`));
      }
      if (request.restoreCheck === 'full' && scratchServerUrl === undefined) {
        return Promise.reject(
          new AdmissionRefusal(422, '/problems/restore-check-unavailable', 'A full restore check needs BACKUP_RESTORE_SCRATCH_URL, which this deployment does not set'),
        );
      }
      return Promise.resolve();
    },
  },
  attemptTimeoutMs: (config) => 2 * config.backup.timeoutMs + BACKUP_ATTEMPT_SLACK_MS,
  worker: async () => (await import('./worker')).backupWorker,
});
