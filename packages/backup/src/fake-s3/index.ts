export { startFakeS3 } from './server';
export type { FakeS3 } from './server';
