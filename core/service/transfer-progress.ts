/**
 * How far a relationship's running transfer got, for `mirror status` and the console in other processes (an update
 * the daemon runs shows nowhere else). One small file per relationship beside the state file, rewritten at most once
 * a second and removed when the transfer ends. It is not state: no fsync and no lock (a crash leaves at most a stale
 * file, which readers ignore unless its process is the relationship's live transferring one).
 */
import { mkdir, readFile, rename, rm, writeFile } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { removeDeadTemporaries } from '../common/half-made.js';
import type { ProgressEvent, TransferProgress } from '../api/types.js';

/** Least time between two writes of one transfer's progress. */
const EVERY_MS = 1000;

/** What the file holds: the progress, and whose it is. */
interface ProgressRecord extends TransferProgress {
  pid: number;
}

function progressPath(stateFile: string, relationship: string): string {
  return join(dirname(stateFile), 'progress', `${relationship}.json`);
}

/** Writes one transfer's progress events to its relationship's progress file, at most once a second. */
export class TransferProgressFile {
  private readonly path: string;
  private last = 0;
  private pending: ProgressEvent | null = null;
  private timer: NodeJS.Timeout | null = null;
  // Writes one after another: a slow write must not land after a later one, nor after the file was removed.
  private chain: Promise<void> = Promise.resolve();
  private ended = false;

  constructor(stateFile: string, relationship: string) {
    this.path = progressPath(stateFile, relationship);
  }

  /** Takes a progress event (the latest one of each second is written; the first at once). */
  record(p: ProgressEvent): void {
    if (this.ended) return;
    this.pending = p;
    const wait = this.last + EVERY_MS - Date.now();
    if (wait <= 0) this.flush();
    else this.timer ??= setTimeout(() => this.flush(), wait).unref();
  }

  /** Removes the file once the writes under way have landed (and what writers killed mid-write left); later events are dropped. */
  async end(): Promise<void> {
    this.ended = true;
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
    this.chain = this.chain
      .then(async () => {
        await rm(this.path, { force: true });
        await removeDeadTemporaries(dirname(this.path), `${basename(this.path)}.`, '.tmp');
      })
      .catch(() => undefined);
    await this.chain;
  }

  private flush(): void {
    this.timer = null;
    const p = this.pending;
    if (!p || this.ended) return;
    this.pending = null;
    this.last = Date.now();
    const record: ProgressRecord = { phase: p.phase, done: p.done, total: p.total, unit: p.unit, at: new Date(this.last).toISOString(), pid: process.pid };
    const tmp = `${this.path}.${process.pid}.tmp`;
    // A reader never sees half a record: written beside, then renamed over. Failing to write it only hides progress.
    this.chain = this.chain
      .then(async () => {
        if (this.ended) return;
        await mkdir(dirname(this.path), { recursive: true });
        await writeFile(tmp, JSON.stringify(record));
        await rename(tmp, this.path);
      })
      .catch(() => undefined);
  }
}

/** The progress process `pid` last wrote for `relationship`, or null (none, another process's, or unreadable). */
export async function readTransferProgress(stateFile: string, relationship: string, pid: number): Promise<TransferProgress | null> {
  try {
    const r = JSON.parse(await readFile(progressPath(stateFile, relationship), 'utf8')) as ProgressRecord;
    if (r.pid !== pid || typeof r.done !== 'number' || typeof r.total !== 'number') return null;
    return { phase: r.phase, done: r.done, total: r.total, unit: r.unit, at: r.at };
  } catch {
    return null;
  }
}
