export { RoundCallFailedError, WsaaTicketLostError } from './errors';
export { createWsaaClient } from './wsaa';
export type { WsaaClient, WsaaCredentials } from './wsaa';
export { createTicketProvider } from './ticket-provider';
export { createWsfeClient } from './wsfe';
export type { WsfeClient } from './wsfe';
export { createInvoiceAuthorizer } from './authorize-invoice';
export type { InvoiceStore } from './authorize-invoice';
export { readCredentialsDirectory } from './credentials';
