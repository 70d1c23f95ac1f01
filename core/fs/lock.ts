/** The one-writer lock: `<image>.lock` (or `snapplane.lock` in a RAID-4 group folder) holds the writer's pid, host and start time. */
import { open, readFile, stat, unlink } from 'node:fs/promises';
import { hostname } from 'node:os';
import { basename, dirname, join } from 'node:path';
import { SnapplaneError, isSnapplaneError } from '../common/errors.js';
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

/** What this process said it is (setLockHolderName), for other records that name it. */
export function holderProgram(): string | undefined {
  return holderName?.program;
}

/** Where the lock of a volume lives: `<image>.lock`, or `<folder>/snapplane.lock` for a RAID-4 group. */
export function lockPathOf(volume: string, isGroup: boolean): string {
  return isGroup ? join(volume, 'snapplane.lock') : `${volume}.lock`;
}

/** Takings of a lock by this process under way, per lock file (see acquire). */
const taking = new Map<string, Promise<unknown>>();

export class VolumeLock {
  private constructor(readonly path: string) {}

  /**
   * Takes the writer lock of `volume`; LOCKED names the holder. A lock left by a dead process is taken over.
   * `holder` names what holds it in the LOCKED others get (else the process's name, setLockHolderName).
   */
  static async acquire(volume: string, lockPath = lockPathOf(volume, false), holder?: { program: string; note?: string }): Promise<VolumeLock> {
    // Two takers in this process would share the temporary `<lock>.<pid>.tmp` (one could link the other's half-written
    // file): they take turns here; the one that comes second finds the lock held by this pid (LOCKED).
    return inTurn(taking, lockPath, () => VolumeLock.take(volume, lockPath, holder));
  }

  private static async take(volume: string, lockPath: string, holder?: { program: string; note?: string }): Promise<VolumeLock> {
    const record: LockRecord = { pid: process.pid, host: hostname(), since: new Date().toISOString(), ...(holder ?? holderName ?? {}) };
    // A writer killed between writing its temporary and removing it left `<lock>.<pid>.tmp`.
    await removeDeadTemporaries(dirname(lockPath), `${basename(lockPath)}.`, '.tmp');
    for (let attempt = 0; attempt < 3; attempt++) {
      try {
        await createWhole(lockPath, record);
        return new VolumeLock(lockPath);
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code !== 'EEXIST') {
          throw new SnapplaneError('IO', `cannot create lock file '${lockPath}': ${(e as Error).message}`, { volume });
        }
      }
      let text: string;
      try {
        text = await readFile(lockPath, 'utf8');
      } catch (e) {
        // Released between our link and this read: try again (removing what is there now would remove a lock
        // another process has just taken).
        if ((e as NodeJS.ErrnoException).code === 'ENOENT') continue;
        throw new SnapplaneError('IO', `cannot read lock file '${lockPath}': ${(e as Error).message}`, { volume });
      }
      let holder: LockRecord | null = null;
      try {
        holder = JSON.parse(text) as LockRecord;
      } catch {
        // Written by a version that created the file before writing it: young means being taken.
        const age = await stat(lockPath).then(
          (st) => Date.now() - st.mtimeMs,
          () => Infinity,
        );
        if (age < 10_000) {
          throw new SnapplaneError('LOCKED', `volume '${volume}' is being opened for writing by another process (lock file '${lockPath}')`, { volume });
        }
      }
      if (holder && (holder.host !== record.host || processAlive(holder.pid))) {
        throw new SnapplaneError(
          'LOCKED',
          `volume '${volume}' is open for writing by process ${holder.pid}${holder.program ? ` (${holder.program})` : ''} on ${holder.host} since ${holder.since}${holder.note ? `; ${holder.note}` : ''}`,
          { volume },
        );
      }
      // Stale (the holder died) or unreadable and old: remove exactly that one, then try again.
      await removeStaleLock(lockPath, text, record);
    }
    throw new SnapplaneError('LOCKED', `volume '${volume}' is locked (lock file '${lockPath}')`, { volume });
  }

  /** Releases the lock. */
  async release(): Promise<void> {
    await unlink(this.path).catch(() => undefined);
  }
}

/** How long a change of a shared file waits for another process's change before giving up (changes take milliseconds). */
const CHANGE_WAIT_MS = 20_000;

/** Changes of this process, per file, one after another (they would share the lock's pid and temporary). */
const changeQueues = new Map<string, Promise<unknown>>();

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/**
 * Runs `change` (a read, change and write of `file`) holding `<file>.lock`, taken as a writer's lock is: for small
 * files that several processes change (the state file, a volume's known destinations), where a change made from a
 * stale copy would drop another's. A live holder is waited for, a few milliseconds at a time, up to 20 s; then
 * LOCKED names the file and the holder, and nothing was changed.
 */
export async function withFileLock<T>(file: string, change: () => Promise<T>): Promise<T> {
  return inTurn(changeQueues, file, async () => {
    const lock = await waitForFileLock(file);
    try {
      return await change();
    } finally {
      await lock.release();
    }
  });
}

/** Runs `fn` once the runs queued before it under `key` in this process have ended, whatever their outcome. */
async function inTurn<T>(queue: Map<string, Promise<unknown>>, key: string, fn: () => Promise<T>): Promise<T> {
  const mine = (queue.get(key) ?? Promise.resolve()).catch(() => undefined).then(fn);
  queue.set(key, mine);
  try {
    return await mine;
  } finally {
    if (queue.get(key) === mine) queue.delete(key);
  }
}

async function waitForFileLock(file: string): Promise<VolumeLock> {
  const started = Date.now();
  for (let attempt = 0; ; attempt++) {
    try {
      return await VolumeLock.acquire(file, `${file}.lock`);
    } catch (e) {
      if (!isSnapplaneError(e, 'LOCKED')) throw e;
      if (Date.now() - started > CHANGE_WAIT_MS) {
        throw new SnapplaneError('LOCKED', `'${file}' is being changed by another process (${e.message.replace(/^volume '[^']*' is /, '')}); nothing was changed: try again`, { path: file, cause: e });
      }
    }
    // Short, growing, jittered waits: many processes queued at once do not wake together.
    await sleep(Math.min(50, 2 + attempt * 2) + Math.random() * 10);
  }
}

/** How long a takeover guard may stand before it counts as left by a killed process whatever its pid says. */
const GUARD_STALE_MS = 10_000;

/**
 * Creates `path` holding `record`, or fails with EEXIST: written under a temporary name (`<lock>.<pid>.tmp`) and
 * linked into place, so the file appears with its holder in it; a process killed while taking it leaves a stale
 * lock (taken over at once), never an empty one.
 */
async function createWhole(path: string, record: LockRecord, tmp = `${path}.${process.pid}.tmp`): Promise<void> {
  try {
    const h = await open(tmp, 'w');
    try {
      await h.writeFile(JSON.stringify(record));
    } finally {
      await h.close();
    }
    await linkIntoPlace(tmp, path);
  } finally {
    await unlink(tmp).catch(() => undefined);
  }
}

/**
 * Removes the lock file at `lockPath` if it still holds `staleText`. Checking and removing must not interleave with
 * another process's: two processes that both judged one dead holder's lock stale would otherwise remove it twice,
 * and the second removal would take away the lock the first one took meanwhile (two holders at once: lost changes).
 * So the check and the removal are made under `<lock>.takeover`, a guard only removers take; a new holder cannot
 * link its lock in while the stale one is there, and a dead holder cannot release, so what was checked stays
 * until it is removed. A guard whose holder died is removed in turn (two processes racing on that could still both
 * pass: it needs a process killed within the microseconds it holds the guard, and another takeover at once).
 */
async function removeStaleLock(lockPath: string, staleText: string, record: LockRecord): Promise<void> {
  const guard = `${lockPath}.takeover`;
  try {
    await createWhole(guard, record, `${lockPath}.${process.pid}.tmp`);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
    await removeDeadGuard(guard);
    // Another process is removing it: the caller tries again and finds it gone or taken.
    return;
  }
  try {
    const now = await readFile(lockPath, 'utf8').catch(() => null);
    if (now === staleText) await unlink(lockPath).catch(() => undefined);
  } finally {
    await unlink(guard).catch(() => undefined);
  }
}

/** Removes a takeover guard left by a process that died holding it (or one unreadable and old). */
async function removeDeadGuard(guard: string): Promise<void> {
  const [text, st] = await Promise.all([readFile(guard, 'utf8').catch(() => null), stat(guard).catch(() => null)]);
  if (text === null || st === null) return;
  let holder: LockRecord | null = null;
  try {
    holder = JSON.parse(text) as LockRecord;
  } catch {
    holder = null;
  }
  const dead = holder ? holder.host === hostname() && !processAlive(holder.pid) : false;
  if (dead || Date.now() - st.mtimeMs > GUARD_STALE_MS) await unlink(guard).catch(() => undefined);
}
