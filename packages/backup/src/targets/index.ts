import type { BackupConfig, BackupTargetConfig } from '@jobfleet/config';
import type { BackupTarget } from '../target';
import { createFilesystemTarget } from './filesystem';

/**
 * The target a configured name stands for; close() releases an S3 client's sockets. The AWS SDK
 * takes seconds to import, so only a process with an S3 target loads it.
 */
export async function createBackupTarget(target: BackupTargetConfig, s3: BackupConfig['s3']): Promise<BackupTarget & { close(): void }> {
  if (target.type === 'filesystem') return { ...createFilesystemTarget({ directory: target.directory }), close: () => undefined };
  const { createS3Target } = await import('./s3');
  return createS3Target({
    endpoint: target.endpoint,
    region: target.region,
    bucket: target.bucket,
    prefix: target.prefix,
    forcePathStyle: target.forcePathStyle,
    accessKeyId: s3.accessKeyId,
    secretAccessKey: s3.secretAccessKey,
    partSizeBytes: s3.partSizeBytes,
    queueSize: s3.queueSize,
    requestTimeoutMs: s3.requestTimeoutMs,
  });
}
