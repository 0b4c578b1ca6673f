import type { Readable, Writable } from 'node:stream';

/** File name endings of finished backups: custom format, and gzipped plain SQL. */
export const BACKUP_SUFFIXES = ['.dump', '.sql.gz'] as const;

/** A finished backup as a target lists it; in-progress uploads and partial files are never listed. */
export interface StoredBackup {
  /** The object's file name (`<prefix>….dump` / `.sql.gz`), without directory or key prefix. */
  name: string;
  /** What `open` and `remove` take, and what the `backups` row stores. */
  location: string;
  bytes: number;
  modifiedAt: Date;
}

/**
 * One backup being written. The runner pipes the dump into `stream`; only `commit` makes it
 * visible under its final name, so a failed run can never leave something that looks complete.
 */
export interface BackupUpload {
  readonly stream: Writable;
  /** Where `commit` will publish it (what `commit` returns). */
  readonly location: string;
  /** Call after `stream` finished: publishes the object durably and returns its location. */
  commit(): Promise<string>;
  /** Discards whatever was written (partial file, multipart upload). Safe to call more than once. */
  abort(): Promise<void>;
}

/** Where dumps are kept: a local directory or an S3-compatible bucket. */
export interface BackupTarget {
  readonly kind: 'filesystem' | 's3';
  /** For logs and the `backups.target` column, e.g. `filesystem:/var/backups`, `s3://bucket/prefix/`. */
  readonly description: string;
  /** Starts writing `fileName` (a plain file name, unique per run). */
  begin(fileName: string): Promise<BackupUpload>;
  /** Reads a committed backup back (restore checks). */
  open(location: string): Promise<Readable>;
  /** Committed backups whose name starts with `namePrefix`. */
  list(namePrefix: string): Promise<StoredBackup[]>;
  /** Deletes one committed backup; a missing one is not an error. */
  remove(location: string): Promise<void>;
  /**
   * Discards unfinished writes (partial files, open multipart uploads) whose file name starts with
   * `namePrefix` and that `isLive` does not claim: what a killed worker left behind. Returns the
   * file names (as given to `begin`) it discarded.
   */
  removeAbandoned(namePrefix: string, isLive: (fileName: string) => boolean): Promise<string[]>;
}
