import type { z } from 'zod';
import { afipSyncRequestSchema } from './afip-sync';
import { backupRequestSchema } from './backup';
import { calendarSyncRequestSchema } from './calendar-sync';
import type { QueueName } from './queues';

/**
 * How the API takes one queue's jobs: the body schema, the entity whose sync status the job
 * reports, and the idempotency key used when the producer sends none.
 * (Method syntax on purpose: it lets the registry below hold every queue's schema type.)
 */
export interface QueueIntake<S extends z.ZodType = z.ZodType> {
  requestSchema: S;
  /** One line for the API docs. */
  summary: string;
  entityId(request: z.output<S>): string;
  /** Monotonic version of the entity; 0 where the entity has none. */
  version(request: z.output<S>): number;
  /** The natural key of the request: a resend of the same thing replays instead of duplicating. */
  defaultIdempotencyKey(request: z.output<S>): string;
  /** The BullMQ job name, shown in Bull Board. */
  jobName(request: z.output<S>): string;
  /** How the default key is built, for the docs. */
  defaultKeyDescription: string;
  /** The API key scope a producer needs to enqueue. */
  requiredScope: 'jobs:write' | 'admin';
}

const defineIntake = <S extends z.ZodType>(intake: QueueIntake<S>): QueueIntake<S> => intake;

export const QUEUE_INTAKE = {
  'calendar-sync': defineIntake({
    requestSchema: calendarSyncRequestSchema,
    summary: 'Queue a reservation → Google Calendar sync',
    entityId: (request) => request.reservationId,
    version: (request) => request.version,
    defaultIdempotencyKey: (request) => `reservation:${request.reservationId}:v${request.version}`,
    defaultKeyDescription: '`reservation:<reservationId>:v<version>`',
    jobName: (request) => request.action,
    requiredScope: 'jobs:write',
  }),
  'afip-sync': defineIntake({
    requestSchema: afipSyncRequestSchema,
    summary: 'Queue an invoice for AFIP authorisation (CAE)',
    entityId: (request) => request.invoiceId,
    // Invoices have no versions: one authorisation per invoice.
    version: () => 0,
    defaultIdempotencyKey: (request) => `invoice:${request.invoiceId}`,
    defaultKeyDescription: '`invoice:<invoiceId>`',
    jobName: () => 'authorize',
    requiredScope: 'jobs:write',
  }),
  backup: defineIntake({
    requestSchema: backupRequestSchema,
    summary: 'Run a configured backup definition now (admin scope)',
    entityId: (request) => request.definition,
    version: () => 0,
    // A resend within the same minute is the same request; send a key to ask for two runs in one minute.
    defaultIdempotencyKey: (request) => `backup:${request.definition}:${new Date().toISOString().slice(0, 16)}`,
    defaultKeyDescription: '`backup:<definition>:<UTC minute, e.g. 2026-11-23T03:00>`',
    jobName: (request) => (request.action === 'verify' ? 'on-demand-verify' : 'on-demand'),
    // A dump holds every tenant's data.
    requiredScope: 'admin',
  }),
} satisfies Record<QueueName, QueueIntake>;
