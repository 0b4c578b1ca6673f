export { WSAA_DEPENDENCY, WSFE_DEPENDENCY, WsaaAlreadyAuthenticatedError, WsaaTicketLostError } from './errors';
export { buildLoginTicketRequest, createWsaaClient, signLoginTicketRequest } from './wsaa';
export type { AccessTicket, WsaaClient, WsaaClientOptions, WsaaCredentials } from './wsaa';
export { createTicketProvider } from './ticket-provider';
export type { IssuerRef, TicketProvider, TicketProviderOptions } from './ticket-provider';
export { createWsfeClient, WsfeTokenRejectedError } from './wsfe';
export type {
  AfipMessage,
  AuthorizedInvoice,
  CaeResult,
  SalesPoint,
  WsfeAuth,
  WsfeClient,
  WsfeClientOptions,
  WsfeInvoice,
} from './wsfe';
export { authorizeInvoice, voucherLockKey } from './authorize-invoice';
export type { AuthorizeInvoiceDeps, AuthorizeInvoiceJob, FencedRow, HeldLock, InvoiceStore, StoredInvoice, VoucherKey } from './authorize-invoice';
export { readCredentialsDirectory } from './credentials';
export type { IssuerFiles } from './credentials';
