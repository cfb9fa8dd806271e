import { createReadStream } from 'node:fs';
import { mkdir, readdir, rename, rm, stat, writeFile } from 'node:fs/promises';
import { dirname, join, resolve, sep } from 'node:path';
import type { Readable } from 'node:stream';
import { GridFSBucket, type Db } from 'mongodb';

/**
 * Where export and import files live. Names are `<job>/<file>`: a job's files go together. Writes are whole
 * files (a part is written once, after its resources are known), so a reader never sees half a file.
 */
export interface FileStore {
  readonly kind: string;
  write(name: string, content: Buffer): Promise<void>;
  /** The file's bytes, or undefined when there is no such file. */
  open(name: string): Promise<{ size: number; stream: Readable } | undefined>;
  /** Removes every file of a job. */
  removeJob(job: string): Promise<void>;
  /** Removes one file (no error when it does not exist). */
  remove(name: string): Promise<void>;
}

const SAFE = /^[A-Za-z0-9_-]+\/[A-Za-z0-9_.-]+$/;
const check = (name: string) => {
  if (!SAFE.test(name) || name.includes('..')) throw new Error(`bad bulk file name '${name}'`);
  return name;
};

/**
 * GridFS (the default): plain `bulk_files.files` and `bulk_files.chunks` collections with their indexes, which
 * FerretDB serves like any collection. A rewrite of a name (a part written again after a restart) replaces it.
 */
export class GridFsStore implements FileStore {
  readonly kind = 'gridfs';
  private readonly bucket: GridFSBucket;

  constructor(private readonly db: Db) {
    this.bucket = new GridFSBucket(db, { bucketName: 'bulk_files', chunkSizeBytes: 255 * 1024 });
  }

  async write(name: string, content: Buffer): Promise<void> {
    check(name);
    await this.remove(name);
    await new Promise<void>((ok, fail) => {
      const up = this.bucket.openUploadStream(name, { metadata: { job: name.split('/')[0] } });
      up.once('finish', () => ok()).once('error', fail);
      up.end(content);
    });
  }

  async open(name: string) {
    check(name);
    const file = await this.bucket.find({ filename: name }).sort({ uploadDate: -1 }).limit(1).next();
    if (!file) return undefined;
    return { size: file.length, stream: this.bucket.openDownloadStream(file._id) as Readable };
  }

  async remove(name: string): Promise<void> {
    for (const f of await this.bucket.find({ filename: name }).toArray()) await this.bucket.delete(f._id).catch(() => undefined);
  }

  async removeJob(job: string): Promise<void> {
    for (const f of await this.bucket.find({ 'metadata.job': job }).toArray()) await this.bucket.delete(f._id).catch(() => undefined);
  }
}

/** A local directory (BULK_FILE_STORE=directory): one sub-directory per job; written to a temporary name, then renamed. */
export class DirectoryStore implements FileStore {
  readonly kind = 'directory';
  constructor(private readonly root: string) {}

  private path(name: string): string {
    const p = resolve(this.root, check(name));
    if (!p.startsWith(resolve(this.root) + sep)) throw new Error(`bad bulk file name '${name}'`);
    return p;
  }

  async write(name: string, content: Buffer): Promise<void> {
    const p = this.path(name);
    await mkdir(dirname(p), { recursive: true });
    const tmp = `${p}.${process.pid}.tmp`;
    await writeFile(tmp, content);
    await rename(tmp, p);
  }

  async open(name: string) {
    const p = this.path(name);
    const s = await stat(p).catch(() => undefined);
    if (!s?.isFile()) return undefined;
    return { size: s.size, stream: createReadStream(p) };
  }

  async remove(name: string): Promise<void> {
    await rm(this.path(name), { force: true });
  }

  async removeJob(job: string): Promise<void> {
    if (!/^[A-Za-z0-9_-]+$/.test(job)) throw new Error(`bad bulk job id '${job}'`);
    await rm(join(this.root, job), { recursive: true, force: true });
  }

  /** Job directories present (for tests and cleanup). */
  async jobs(): Promise<string[]> {
    return readdir(this.root).catch(() => []);
  }
}

export function createFileStore(kind: 'gridfs' | 'directory', db: Db, directory: string | undefined): FileStore {
  if (kind === 'directory') {
    if (!directory) throw new Error('BULK_FILE_STORE=directory needs BULK_FILE_DIR');
    return new DirectoryStore(directory);
  }
  return new GridFsStore(db);
}
