/** The one-writer lock: `<image>.lock` (or `snapplane.lock` in a RAID-4 group folder) holds the writer's pid, host and start time. */
import { open, readFile, stat, unlink } from 'node:fs/promises';
import { hostname } from 'node:os';
import { basename, dirname, join } from 'node:path';
import { SnapplaneError } from '../common/errors.js';
import { processAlive } from '../common/process-alive.js';
import { linkIntoPlace } from '../common/link-into-place.js';
import { removeDeadTemporaries } from '../common/half-made.js';

interface LockRecord {
  pid: number;
  host: string;
  since: string;
  /** What the holder is (e.g. the console), and when it lets go: said in the LOCKED another process gets. */
  program?: string;
  note?: string;
}

let holderName: { program: string; note?: string } | null = null;

/** Names this process in the locks it takes (a long-lived holder, such as the console, says what it is and when it lets go). */
export function setLockHolderName(program: string, note?: string): void {
  holderName = { program, note };
}

/** Where the lock of a volume lives: `<image>.lock`, or `<folder>/snapplane.lock` for a RAID-4 group. */
export function lockPathOf(volume: string, isGroup: boolean): string {
  return isGroup ? join(volume, 'snapplane.lock') : `${volume}.lock`;
}

export class VolumeLock {
  private constructor(readonly path: string) {}

  /** Takes the writer lock of `volume`; LOCKED names the holder. A lock left by a dead process is taken over. */
  static async acquire(volume: string, lockPath = lockPathOf(volume, false)): Promise<VolumeLock> {
    const record: LockRecord = { pid: process.pid, host: hostname(), since: new Date().toISOString(), ...(holderName ?? {}) };
    // A writer killed between writing its temporary and removing it left `<lock>.<pid>.tmp`.
    await removeDeadTemporaries(dirname(lockPath), `${basename(lockPath)}.`, '.tmp');
    for (let attempt = 0; attempt < 3; attempt++) {
      // Written under a temporary name and linked into place: the lock file appears with its holder in it, so a
      // writer killed while taking it leaves a stale lock (taken over at once), never an empty one.
      const tmp = `${lockPath}.${process.pid}.tmp`;
      try {
        const h = await open(tmp, 'w');
        try {
          await h.writeFile(JSON.stringify(record));
        } finally {
          await h.close();
        }
        await linkIntoPlace(tmp, lockPath);
        return new VolumeLock(lockPath);
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code !== 'EEXIST') {
          throw new SnapplaneError('IO', `cannot create lock file '${lockPath}': ${(e as Error).message}`, { volume });
        }
      } finally {
        await unlink(tmp).catch(() => undefined);
      }
      let holder: LockRecord | null = null;
      try {
        holder = JSON.parse(await readFile(lockPath, 'utf8')) as LockRecord;
      } catch {
        // Written by a version that created the file before writing it: young means being taken.
        const age = await stat(lockPath).then(
          (st) => Date.now() - st.mtimeMs,
          () => Infinity,
        );
        if (age < 10_000) {
          throw new SnapplaneError('LOCKED', `volume '${volume}' is being opened for writing by another process (lock file '${lockPath}')`, { volume });
        }
        holder = null;
      }
      if (holder && (holder.host !== record.host || processAlive(holder.pid))) {
        throw new SnapplaneError(
          'LOCKED',
          `volume '${volume}' is open for writing by process ${holder.pid}${holder.program ? ` (${holder.program})` : ''} on ${holder.host} since ${holder.since}${holder.note ? `; ${holder.note}` : ''}`,
          { volume },
        );
      }
      // Stale (the holder died) or unreadable: remove and retry.
      await unlink(lockPath).catch(() => undefined);
    }
    throw new SnapplaneError('LOCKED', `volume '${volume}' is locked (lock file '${lockPath}')`, { volume });
  }

  /** Releases the lock. */
  async release(): Promise<void> {
    await unlink(this.path).catch(() => undefined);
  }
}
