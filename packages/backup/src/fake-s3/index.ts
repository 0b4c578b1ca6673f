export { startFakeS3 } from './server';
export type { FakeS3, FakeS3Faults, FakeS3Operation, FakeS3Options } from './server';
