/** The console's data shapes: what the router answers and pushes to the renderer (plain JSON-able objects). */
import type { ScheduleRunReport, VolumeInfo } from './types.js';

/** An error as it crosses a transport: a SnapplaneError's `toJSON()` (code, message, volume/path/VBN/snapshot). */
export interface WireError {
  code: string;
  message: string;
  volume?: string;
  path?: string;
  vbn?: number;
  snapshot?: string;
  /** Validation failures: which argument and why. */
  issues?: { path: string; message: string }[];
}

/** A volume the console knows (given on the command line, created or opened in it), with its state. */
export interface KnownVolume {
  path: string;
  info: VolumeInfo | null;
  error: WireError | null;
}

/** A page of a folder listing. */
export interface DirPage {
  path: string;
  entries: import('./types.js').DirEntryInfo[];
  total: number;
  offset: number;
}

/**
 * Aggregated plane tiles for the bit-plane grid: for `rows` rows of `blocksPerRow` blocks starting at `firstVbn`,
 * one density byte per row and plane (0 = no block set; otherwise 1..255, proportional to the blocks set, and at
 * least 1 when any is). `densities` is base64, plane-major: plane k's rows are bytes [k*rows, (k+1)*rows).
 */
export interface PlaneTiles {
  firstVbn: number;
  blocksPerRow: number;
  rows: number;
  /** Rows that lie (at least partly) inside the volume; rows past its end are all zero. */
  validRows: number;
  planes: number[];
  densities: string;
  /** Densities of the storage image `expression`, when one was asked for (base64, `rows` bytes). */
  image: string | null;
  imageBlocks: number | null;
  /** Why the image was not drawn (its expression does not fit this volume); the planes are drawn all the same. */
  imageError: string | null;
  /** Blocks each plane holds in the whole tile range. */
  counts: number[];
}

/** Who uses a block. */
export interface BlockOwner {
  kind: 'reserved' | 'inode-file' | 'block-map' | 'snapshot-table' | 'file' | 'dir' | 'symlink' | 'metadata';
  /** The file or folder path, when the block belongs to one. */
  path: string | null;
  inode: number | null;
  /** An indirect (pointer) block of that tree, not a data block. */
  indirect: boolean;
  /** Where the owner was found: `active`, or the snapshot that holds the block when the active file system does not. */
  state: string;
}

/** What the grid's hover shows for a block (or the first used block of a range). */
export interface BlockInfo {
  vbn: number;
  rangeFirst: number;
  rangeCount: number;
  /** RAID-4: the data member and stripe; a single image: member 0 and no stripe. */
  member: number;
  memberPath: string;
  stripe: number | null;
  diskBlock: number | null;
  /** Planes that hold a block of the range (for one block: the planes that hold it). */
  planes: { plane: number; name: string }[];
  owner: BlockOwner | null;
}

/** A saved storage-image expression. */
export interface SavedImage {
  name: string;
  expression: string;
  createdAt: string;
}

/** What reverting to a snapshot would lose. */
export interface RevertPreview {
  snapshot: string;
  /** Files added, changed and removed in the active file system since the snapshot (all lost by a revert). */
  added: string[];
  changed: string[];
  removed: string[];
  /** Blocks the active file system alone holds: freed by the revert, gone for good. */
  lostBlocks: number;
  lostBytes: number;
  /** Snapshots taken after it: they stay. */
  laterSnapshots: string[];
}

export type JobKind = 'copy' | 'backup' | 'restore' | 'verify' | 'mirror-update' | 'mirror-resync' | 'replicate';

/** A console job: a transfer started from the console, with its live progress. */
export interface JobState {
  id: number;
  kind: JobKind;
  /** One line: what it does. */
  title: string;
  volume: string;
  target: string;
  state: 'running' | 'ok' | 'error' | 'cancelled';
  phase: string;
  done: number;
  total: number;
  unit: 'blocks' | 'bytes' | 'files' | 'items';
  /** Units per second (bytes per second for byte phases), smoothed. */
  rate: number;
  etaSeconds: number | null;
  startedAt: string;
  finishedAt: string | null;
  /** How many progress updates were pushed. */
  updates: number;
  error: WireError | null;
  /** The transfer's report when it ends (SendReport, ReceiveReport[] …). */
  result: unknown;
}

/** The host's description of itself. */
export interface HostInfo {
  version: string;
  pid: number;
  platform: string;
  home: string;
  schedulerIntervalMs: number;
  /** Where `restoreToHost` may write only inside the folder it is given. */
  transport: 'websocket' | 'ipc' | 'direct';
}

/** Events the host pushes. */
export type ConsoleEvent =
  | { type: 'job'; job: JobState }
  | { type: 'volumeChanged'; volume: string; reason: string }
  | { type: 'scheduleRan'; report: ScheduleRunReport };
