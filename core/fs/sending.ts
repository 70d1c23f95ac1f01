/**
 * Snapshots being sent from a volume by processes that opened it read-only (`<image>.sending.json`): a writer in
 * another process must not delete them under the transfer (its blocks would be freed and reused while the sender
 * reads them; the send would fail with a stale read hours in). Within one process the volume's pinned planes do
 * the same; this record tells other processes.
 */
import { randomUUID } from 'node:crypto';
import { hostname } from 'node:os';
import { open, readFile, rename, unlink } from 'node:fs/promises';
import { basename, dirname } from 'node:path';
import { processAlive } from '../common/process-alive.js';
import { removeDeadTemporaries } from '../common/half-made.js';
import { withFileLock } from './lock.js';
import { sidecarPath } from './sidecar.js';

/** One send in flight: who sends, since when, and the snapshots (by plane and CP generation) it reads. */
export interface SendingRecord {
  id: string;
  pid: number;
  host: string;
  since: string;
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
  const mine: SendingRecord = { id: randomUUID(), pid: process.pid, host: hostname(), since: new Date().toISOString(), snapshots };
  await withFileLock(path, async () => writeRecords(path, [...live(await readRecords(path)), mine]));
  let released = false;
  return async () => {
    if (released) return;
    released = true;
    await withFileLock(path, async () => writeRecords(path, live(await readRecords(path)).filter((r) => r.id !== mine.id)));
  };
}

/** The sends of other processes running now from the volume at `volumePath`. */
export async function sendsElsewhere(volumePath: string): Promise<SendingRecord[]> {
  const here = hostname();
  return live(await readRecords(await sendingRecordsPath(volumePath))).filter((r) => !(r.pid === process.pid && r.host === here));
}

/** The send of another process that reads the snapshot in `plane` (of CP `generation`), or null. */
export async function sentElsewhere(volumePath: string, plane: number, generation: number): Promise<SendingRecord | null> {
  return (await sendsElsewhere(volumePath)).find((r) => r.snapshots.some((s) => s.plane === plane && s.generation === generation)) ?? null;
}

/** The file listing the sends from the volume at `volumePath`. */
export function sendingRecordsPath(volumePath: string): Promise<string> {
  return sidecarPath(volumePath, 'sending.json');
}

/**
 * What the refusal to delete a snapshot another process sends says. A sender on another host (a volume on shared
 * storage) is honoured until its entry goes, since this host cannot see its processes: the way out is named.
 */
export function sentElsewhereMessage(snapshot: string, r: SendingRecord, recordsPath: string): string {
  const base = `snapshot '${snapshot}' is being sent by process ${r.pid} on ${r.host} (since ${r.since}); delete it after that transfer ends, or stop it first`;
  if (r.host === hostname()) return base;
  return `${base} (this host cannot tell whether that process still runs: if it does not, remove the entry with id ${r.id} from ${recordsPath})`;
}
