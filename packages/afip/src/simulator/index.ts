export { startAfipSimulator } from './server';
export type { AfipSimulator, AfipSimulatorFault, AfipSimulatorOptions, AfipSimulatorService, AuthorizedVoucher } from './server';
export { createTestCertificate } from './certificate';
