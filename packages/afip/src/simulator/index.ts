export { startAfipSimulator } from './server';
export type { AfipSimulator, AfipSimulatorOptions } from './server';
export { createTestCertificate } from './certificate';
