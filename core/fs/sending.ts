/**
 * Snapshots being sent from read-only views of a volume (`<image>.sending.json`): a writer must not delete them
 * under the transfer (its blocks would be freed and reused while the sender reads them; the send would fail with a
 * stale read hours in). A writer's own sends are its pinned planes; a view's are recorded here, for writers in
 * other processes and for the writer of its own process, which is another object.
 */
import { randomUUID } from 'node:crypto';
import { hostname } from 'node:os';
import { open, readFile, rename, unlink } from 'node:fs/promises';
import { basename, dirname } from 'node:path';
import { processAlive } from '../common/process-alive.js';
import { removeDeadTemporaries } from '../common/half-made.js';
import { holderProgram, withFileLock } from './lock.js';
import { sidecarPath } from './sidecar.js';

/** One send in flight: who sends, since when, and the snapshots (by plane and CP generation) it reads. */
export interface SendingRecord {
  id: string;
  pid: number;
  host: string;
  since: string;
  /** What the sending process is (`snapplane replicate …`, the console), as its locks say. */
  program?: string;
  snapshots: { name: string; plane: number; generation: number }[];
}

/** Entries whose process runs (or runs on another host, where this one cannot tell). */
function live(list: SendingRecord[]): SendingRecord[] {
  const here = hostname();
  return list.filter((r) => r.host !== here || processAlive(r.pid));
}

async function readRecords(path: string): Promise<SendingRecord[]> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch {
    return [];
  }
  try {
    const list = JSON.parse(text) as unknown;
    if (Array.isArray(list)) return list as SendingRecord[];
  } catch {
    // below
  }
  // Written without fsync: after a crash it may be empty or cut short, and its senders died with the host. Read
  // as none running (a send now running rewrites it whole at its end), rather than stopping every delete and
  // schedule run until someone removes it.
  return [];
}

/** Replaces the file by rename, without fsync: after a crash its senders are gone, and so is what it says. */
async function writeRecords(path: string, list: SendingRecord[]): Promise<void> {
  if (list.length === 0) {
    await unlink(path).catch(() => undefined);
    return;
  }
  // A writer killed between writing its temporary and renaming it left `<path>.<pid>.tmp`.
  await removeDeadTemporaries(dirname(path), `${basename(path)}.`, '.tmp');
  const tmp = `${path}.${process.pid}.tmp`;
  const h = await open(tmp, 'w');
  try {
    await h.writeFile(JSON.stringify(list, null, 2));
  } finally {
    await h.close();
  }
  await rename(tmp, path);
}

/** Records that this process sends `snapshots` of the volume at `volumePath`; returns the release that removes it. */
export async function recordSending(volumePath: string, snapshots: SendingRecord['snapshots']): Promise<() => Promise<void>> {
  const path = await sendingRecordsPath(volumePath);
  const program = holderProgram();
  const mine: SendingRecord = { id: randomUUID(), pid: process.pid, host: hostname(), since: new Date().toISOString(), ...(program ? { program } : {}), snapshots };
  await withFileLock(path, async () => writeRecords(path, [...live(await readRecords(path)), mine]));
  let released = false;
  return async () => {
    if (released) return;
    released = true;
    await withFileLock(path, async () => writeRecords(path, live(await readRecords(path)).filter((r) => r.id !== mine.id)));
  };
}

/**
 * The sends running now from read-only views of the volume at `volumePath`, this process's own included: a writer
 * here is another object than the view that sends (the console runs a job's send beside a delete from another view).
 */
export async function liveSends(volumePath: string): Promise<SendingRecord[]> {
  return live(await readRecords(await sendingRecordsPath(volumePath)));
}

/** The live send that reads the snapshot in `plane` (of CP `generation`), or null. */
export async function liveSendOf(volumePath: string, plane: number, generation: number): Promise<SendingRecord | null> {
  return (await liveSends(volumePath)).find((r) => r.snapshots.some((s) => s.plane === plane && s.generation === generation)) ?? null;
}

/** Who sends, for messages: this process, or another by pid and host. */
export function senderOf(r: SendingRecord): string {
  const what = typeof r.program === 'string' ? ` (${r.program})` : '';
  return r.pid === process.pid && r.host === hostname() ? `this process${what}` : `process ${r.pid}${what} on ${r.host}`;
}

/** The file listing the sends from the volume at `volumePath`. */
export function sendingRecordsPath(volumePath: string): Promise<string> {
  return sidecarPath(volumePath, 'sending.json');
}

/**
 * What the refusal to delete a snapshot being sent says. A sender on another host (a volume on shared storage) is
 * honoured until its entry goes, since this host cannot see its processes: the way out is named.
 */
export function beingSentMessage(snapshot: string, r: SendingRecord, recordsPath: string): string {
  const base = `snapshot '${snapshot}' is being sent by ${senderOf(r)} (since ${r.since}); delete it after that transfer ends, or stop it first`;
  if (r.host === hostname()) return base;
  return `${base} (this host cannot tell whether that process still runs: if it does not, remove the entry with id ${r.id} from ${recordsPath})`;
}
