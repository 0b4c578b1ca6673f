import type { WsaaClient, WsfeClient } from '@jobfleet/afip';
import type { BackupTarget } from '@jobfleet/backup';
import type { CalendarClient } from '@jobfleet/calendar';
import type { DependencyGuard } from '@jobfleet/resilience';

// Each external call goes through its dependency's guard: a timeout per try, retries for the calls
// that are safe to repeat, and the circuit breaker. Idempotent here means repeating it cannot
// produce a second effect: Calendar writes are keyed by the event id; FECAESolicitar and the WSAA
// login are not (a second login is refused while a ticket is valid).

export function guardCalendar(client: CalendarClient, guard: DependencyGuard): CalendarClient {
  const idempotent = { idempotent: true };
  return {
    insertEvent: (calendarId, event) => guard.call('insertEvent', () => client.insertEvent(calendarId, event), idempotent),
    getEvent: (calendarId, eventId) => guard.call('getEvent', () => client.getEvent(calendarId, eventId), idempotent),
    patchEvent: (calendarId, eventId, patch) => guard.call('patchEvent', () => client.patchEvent(calendarId, eventId, patch), idempotent),
    deleteEvent: (calendarId, eventId) => guard.call('deleteEvent', () => client.deleteEvent(calendarId, eventId), idempotent),
  };
}

export function guardWsaa(client: WsaaClient, guard: DependencyGuard): WsaaClient {
  return { login: (cms) => guard.call('loginCms', () => client.login(cms)) };
}

export function guardWsfe(client: WsfeClient, guard: DependencyGuard): WsfeClient {
  const idempotent = { idempotent: true };
  return {
    dummy: () => guard.call('FEDummy', () => client.dummy(), idempotent),
    lastAuthorized: (auth, ptoVta, cbteTipo) => guard.call('FECompUltimoAutorizado', () => client.lastAuthorized(auth, ptoVta, cbteTipo), idempotent),
    requestCae: (auth, invoice) => guard.call('FECAESolicitar', () => client.requestCae(auth, invoice)),
    getInvoice: (auth, ptoVta, cbteTipo, cbteNro) =>
      guard.call('FECompConsultar', () => client.getInvoice(auth, ptoVta, cbteTipo, cbteNro), idempotent),
    salesPoints: (auth) => guard.call('FEParamGetPtosVenta', () => client.salesPoints(auth), idempotent),
  };
}

/**
 * S3 (or a mounted directory): listing, reading and deleting are guarded calls; an upload is one
 * long stream bounded by BACKUP_TIMEOUT_SECONDS, so only its completion counts for the breaker.
 */
export function guardBackupTarget(target: BackupTarget & { close(): void }, guard: DependencyGuard): BackupTarget & { close(): void } {
  const idempotent = { idempotent: true };
  return {
    kind: target.kind,
    description: target.description,
    close: () => target.close(),
    begin: async (fileName) => {
      const upload = await guard.call('begin', () => target.begin(fileName));
      return {
        stream: upload.stream,
        location: upload.location,
        abort: () => upload.abort(),
        commit: () => guard.call('commit', () => upload.commit(), { timeoutMs: 0 }),
      };
    },
    open: (location) => guard.call('open', () => target.open(location), idempotent),
    list: (namePrefix) => guard.call('list', () => target.list(namePrefix), idempotent),
    remove: (location) => guard.call('remove', () => target.remove(location), idempotent),
    removeAbandoned: (namePrefix, isLive) => guard.call('removeAbandoned', () => target.removeAbandoned(namePrefix, isLive), idempotent),
  };
}
