export { startAfipSimulator } from './server';
export type { AfipSimulator, AfipSimulatorOptions } from './server';
export { createSandboxCredentials, createTestCertificate } from './certificate';
