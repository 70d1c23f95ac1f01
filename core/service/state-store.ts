/**
 * Persistent console state under $SNAPPLANE_HOME (default: the platform's app-data folder): known volumes,
 * their snapshot schedules, mirror relationships and job history. Written atomically (a temp file, fsync, rename,
 * fsync of the folder), and changed only under `state.json.lock`: the CLI, the daemon and the console are separate
 * processes that all change this one file, and a change made from a stale copy would drop the others' changes.
 */
import { mkdir, open, readFile, rename } from 'node:fs/promises';
import { homedir, platform } from 'node:os';
import { dirname, join } from 'node:path';
import { SnapplaneError } from '../common/errors.js';
import { withFileLock } from '../fs/lock.js';
import type { Cadence } from '../jobs/cadence.js';
import type { MirrorKind, SnapshotRef } from '../api/types.js';

export interface ScheduleRecord {
  label: string;
  cadence: Cadence;
  keep: number;
  createdAt: string;
}

/** A transfer job: send, receive, copy, backup or restore, with its outcome. */
export interface TransferJobRecord {
  id: number;
  kind: 'send' | 'receive' | 'copy' | 'backup' | 'restore' | 'restore-file' | 'replicate' | 'mirror-update' | 'mirror-resync' | 'reconstruct';
  volume: string;
  /** Where it went or came from (a file, a tape folder, another volume). */
  target: string;
  expression?: string;
  startedAt: string;
  finishedAt: string;
  outcome: 'ok' | 'error' | 'cancelled';
  /** Phases it went through, in order (e.g. plan, send, receive, commit). */
  phases: string[];
  bytes: number;
  error?: string;
  /** An interrupted receive: the token to resume it with. */
  resumeToken?: string;
}

export type JobRecord = ScheduleJobRecord | TransferJobRecord;

export interface ScheduleJobRecord {
  id: number;
  kind: 'schedule-run';
  volume: string;
  startedAt: string;
  finishedAt: string;
  outcome: 'ok' | 'error';
  taken: string[];
  pruned: string[];
  kept: { name: string; reason: string }[];
  freedBytes: number;
  error?: string;
}

/** A mirror or replica relationship as persisted (MirrorInfo is what front ends see). */
export interface RelationshipRecord {
  name: string;
  kind: MirrorKind;
  /** Absolute path of the source volume. */
  source: string;
  /** Absolute path of a local volume (or, for an incremental mirror, of its fast folder), or host:port/name. */
  destination: string;
  slow: string | null;
  keyFile: string | null;
  /** An interval schedule (null: none, or one at a time of day). */
  everyMs: number | null;
  /** A time-of-day schedule (`--at HH:MM [--on weekday]`); absent in records written before it existed. */
  at?: Extract<Cadence, { kind: 'at' }> | null;
  limit: number | null;
  broken: boolean;
  lastCommon: SnapshotRef | null;
  /** A snapshot taken for a transfer that has not completed (sent again, resumed where possible). */
  pending: string | null;
  /** A snapshot of the user's that a resync held as the common one: released when an update moves past it. */
  resyncHold?: string | null;
  /** A full resync is under way: updates send whole copies that replace the mirror once they commit. */
  replacing?: boolean;
  seq: number;
  transferring: { pid: number; since: string } | null;
  lastTransferAt: string | null;
  lastTransferBytes: number;
  lastError: string | null;
  /** When the last update (of any outcome) ended, and how many in a row have failed: a schedule backs off. */
  lastAttemptAt?: string | null;
  failures?: number;
  lastSelection: 'marks' | 'subtraction' | 'full' | null;
  createdAt: string;
}

/** A storage-image expression saved from the console. */
export interface SavedImageRecord {
  name: string;
  expression: string;
  createdAt: string;
}

export interface ConsoleState {
  version: 1;
  volumes: Record<string, { schedules: ScheduleRecord[]; images?: SavedImageRecord[]; known?: boolean }>;
  relationships?: Record<string, RelationshipRecord>;
  history: JobRecord[];
  nextJobId: number;
}

const HISTORY_LIMIT = 500;
let tmpSeq = 0;

/** The folder that holds Snapplane's state: $SNAPPLANE_HOME, else the platform's app-data folder. */
export function snapplaneHome(): string {
  if (process.env.SNAPPLANE_HOME) return process.env.SNAPPLANE_HOME;
  const p = platform();
  if (p === 'darwin') return join(homedir(), 'Library', 'Application Support', 'Snapplane');
  if (p === 'win32') return join(process.env.APPDATA ?? join(homedir(), 'AppData', 'Roaming'), 'Snapplane');
  return join(process.env.XDG_CONFIG_HOME ?? join(homedir(), '.config'), 'snapplane');
}

export class StateStore {
  constructor(readonly path: string = join(snapplaneHome(), 'state.json')) {}

  /** The state as saved (an empty state when none was saved yet). */
  async load(): Promise<ConsoleState> {
    let text: string;
    try {
      text = await readFile(this.path, 'utf8');
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') return { version: 1, volumes: {}, history: [], nextJobId: 1 };
      throw new SnapplaneError('IO', `cannot read state file '${this.path}': ${(e as Error).message}`, { path: this.path });
    }
    try {
      const s = JSON.parse(text) as ConsoleState;
      if (s.version !== 1 || typeof s.volumes !== 'object') throw new Error('unknown layout');
      s.history ??= [];
      s.nextJobId ??= 1;
      return s;
    } catch (e) {
      throw new SnapplaneError('BAD_FORMAT', `state file '${this.path}' is damaged (${(e as Error).message}); move it away to start afresh`, { path: this.path });
    }
  }

  /** Saves the state atomically. */
  async save(state: ConsoleState): Promise<void> {
    state.history = state.history.slice(-HISTORY_LIMIT);
    await mkdir(dirname(this.path), { recursive: true });
    // Unique per save: two changes of one process must not share a temporary.
    const tmp = `${this.path}.${process.pid}.${++tmpSeq}.tmp`;
    const fh = await open(tmp, 'w');
    try {
      await fh.writeFile(JSON.stringify(state, null, 2));
      await fh.sync();
    } finally {
      await fh.close();
    }
    await rename(tmp, this.path);
    const dir = await open(dirname(this.path), 'r');
    try {
      await dir.sync();
    } finally {
      await dir.close();
    }
  }

  /**
   * Loads, changes and saves the state under `state.json.lock`, so that a change made meanwhile by another process
   * (a CLI command, the daemon, the console) is read before this one is made, never overwritten.
   */
  async update<T>(change: (s: ConsoleState) => T): Promise<T> {
    await mkdir(dirname(this.path), { recursive: true });
    return withFileLock(this.path, async () => {
      const s = await this.load();
      const result = change(s);
      await this.save(s);
      return result;
    });
  }
}
