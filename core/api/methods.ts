/**
 * The console's contract: one method table. Each method names the zod schema its arguments must satisfy (one
 * object per call) and, in `MethodResults`, the type it answers with. The router (core/service/router.ts) validates
 * with these schemas; the Electron main process, its preload, the web host and the renderer all use this table.
 */
import { z } from 'zod';
import type {
  BackupPlan,
  CopySummary,
  FsckReport,
  ImageEvalReport,
  MasterInfo,
  MirrorInfo,
  MirrorSetReport,
  PlaneInfo,
  ReplicateReport,
  ScheduleInfo,
  ScheduleRunReport,
  SendReport,
  SnapshotDiff,
  SnapshotInfo,
  SpaceReport,
  VolumeInfo,
} from './types.js';
import type { BlockInfo, DirPage, HostInfo, JobState, KnownVolume, PlaneTiles, RevertPreview, SavedImage } from './console-types.js';

/** The weekdays `on` takes (also by their first three letters), Sunday first as Date.getDay() counts. */
export const WEEKDAYS = ['sunday', 'monday', 'tuesday', 'wednesday', 'thursday', 'friday', 'saturday'] as const;

/** A host or volume path: non-empty, no NUL, bounded. */
export const pathText = z
  .string()
  .min(1, 'must not be empty')
  .max(4096, 'is too long')
  .refine((s) => !s.includes('\0'), 'must not contain a NUL byte');
/** A volume path (an image file or a RAID-4 group folder). */
export const volumePath = pathText;
/** A path inside a volume. */
export const volPath = pathText;
/** A snapshot (or `active`) name. */
export const snapshotName = z
  .string()
  .min(1, 'must not be empty')
  .max(255, 'is too long')
  .refine((s) => !s.includes('\0'), 'must not contain a NUL byte');
const count = z.number().int().min(0).max(Number.MAX_SAFE_INTEGER);
const vbn = count;
const expression = z.string().min(1, 'is empty').max(4096, 'is too long');
const label = z.string().min(1).max(64);
/** A storage-image expression. */
export const imageExpression = expression;

const ref = { volume: volumePath, snapshot: snapshotName.optional() };

/** What a console job does; `kind` picks the transfer. */
export const jobSpec = z.discriminatedUnion('kind', [
  z.strictObject({ kind: z.literal('copy'), source: volumePath, destination: volumePath, expression, force: z.boolean().optional() }),
  // `inVolume`: the backup files are inside that volume rather than on the host.
  z.strictObject({ kind: z.literal('backup'), volume: volumePath, expression, file: pathText, compress: z.enum(['none', 'lz4']).optional(), inVolume: volumePath.optional(), force: z.boolean().optional() }),
  z.strictObject({ kind: z.literal('restore'), volume: volumePath, files: z.array(pathText).min(1).max(256), inVolume: volumePath.optional() }),
  z.strictObject({ kind: z.literal('verify'), files: z.array(pathText).min(1).max(256), inVolume: volumePath.optional() }),
  z.strictObject({ kind: z.literal('mirror-update'), name: label }),
  z.strictObject({ kind: z.literal('mirror-resync'), name: label, reverse: z.boolean().optional(), full: z.boolean().optional(), discard: z.boolean().optional() }),
  z.strictObject({ kind: z.literal('replicate'), source: volumePath, destination: pathText, keyFile: pathText.optional(), limit: z.number().int().min(1024).max(2 ** 40).optional() }),
]);
export type JobSpec = z.infer<typeof jobSpec>;

/** Every method's argument schema. */
/** The largest file the console uploads (its bytes travel base64 in one message; bigger ones go by `put`). */
export const MAX_UPLOAD_BYTES = 16 * 2 ** 20;

export const methodArgs = {
  // host
  hostInfo: z.strictObject({}),
  // volumes
  volumeList: z.strictObject({}),
  volumeOpen: z.strictObject({ path: volumePath }),
  volumeForget: z.strictObject({ path: volumePath }),
  volumeCreate: z.strictObject({ path: volumePath, sizeBytes: z.number().int().min(1).max(2 ** 52), raid: z.number().int().min(2).max(15).optional() }),
  volumeInfo: z.strictObject(ref),
  volumeSync: z.strictObject({ volume: volumePath }),
  fsck: z.strictObject({ volume: volumePath }),
  // files
  ls: z.strictObject({ ...ref, path: volPath, offset: count.optional(), limit: z.number().int().min(1).max(10_000).optional() }),
  mkdir: z.strictObject({ volume: volumePath, path: volPath, parents: z.boolean().optional() }),
  rm: z.strictObject({ volume: volumePath, path: volPath, recursive: z.boolean().optional() }),
  mv: z.strictObject({ volume: volumePath, from: volPath, to: volPath }),
  put: z.strictObject({ volume: volumePath, hostPath: pathText, path: volPath }),
  /** Writes one file from bytes the client sends (base64; at most 16 MiB per call). */
  writeFile: z.strictObject({ volume: volumePath, path: volPath, base64: z.string().max(22_369_624).regex(/^[A-Za-z0-9+/]*={0,2}$/, 'must be base64') }),
  // snapshots
  snapList: z.strictObject({ volume: volumePath }),
  snapCreate: z.strictObject({ volume: volumePath, name: snapshotName, shadow: z.boolean().optional() }),
  snapDelete: z.strictObject({ volume: volumePath, name: snapshotName }),
  snapRename: z.strictObject({ volume: volumePath, from: snapshotName, to: snapshotName }),
  snapHold: z.strictObject({ volume: volumePath, name: snapshotName, hold: z.boolean() }),
  masterMark: z.strictObject({ volume: volumePath, name: snapshotName, mark: z.boolean() }),
  masterList: z.strictObject({ volume: volumePath }),
  /** Forgets a destination that will not come back (a local path or host:port/name); its holds go. */
  masterRelease: z.strictObject({ volume: volumePath, destination: pathText }),
  snapDiff: z.strictObject({ volume: volumePath, older: snapshotName, newer: snapshotName }),
  /** Exact bytes deleting these snapshots would free (asked before a delete). */
  space: z.strictObject({ volume: volumePath, names: z.array(snapshotName).min(1).max(256) }),
  snapRestore: z.strictObject({ volume: volumePath, snapshot: snapshotName, path: volPath, to: volPath.optional() }),
  /** Copies a file or folder of a snapshot into `folder` on the host, as `name` (never outside `folder`). */
  restoreToHost: z.strictObject({ volume: volumePath, snapshot: snapshotName, path: volPath, folder: pathText, name: z.string().max(4096).optional() }),
  revertPreview: z.strictObject({ volume: volumePath, snapshot: snapshotName }),
  snapRevert: z.strictObject({ volume: volumePath, snapshot: snapshotName }),
  // planes and the grid
  planes: z.strictObject({ volume: volumePath }),
  planeTiles: z.strictObject({
    volume: volumePath,
    firstVbn: vbn,
    blocksPerRow: z.number().int().min(1).max(2 ** 40),
    rows: z.number().int().min(1).max(4096),
    planes: z.array(z.number().int().min(0).max(65535)).max(256),
    expression: expression.optional(),
  }),
  blockInfo: z.strictObject({ volume: volumePath, vbn, count: z.number().int().min(1).max(2 ** 40).optional() }),
  // storage images
  imageEval: z.strictObject({ volume: volumePath, expression }),
  imageSave: z.strictObject({ volume: volumePath, name: z.string().min(1).max(64).regex(/^[^\0/]+$/, 'must not contain / or NUL'), expression }),
  imageList: z.strictObject({ volume: volumePath }),
  imageDelete: z.strictObject({ volume: volumePath, name: z.string().min(1).max(64) }),
  imagePlan: z.strictObject({ volume: volumePath, policy: z.string().min(1).max(256), at: z.string().max(64).optional() }),
  sendDryRun: z.strictObject({ volume: volumePath, expression }),
  // jobs
  jobStart: jobSpec,
  jobCancel: z.strictObject({ id: z.number().int().min(1).max(Number.MAX_SAFE_INTEGER) }),
  jobList: z.strictObject({}),
  jobHistory: z.strictObject({ limit: z.number().int().min(1).max(500).optional() }),
  // schedules
  scheduleAdd: z
    .strictObject({
      volume: volumePath,
      label: z.string().min(1).max(40),
      every: z.string().min(1).max(32).optional(),
      at: z.string().min(1).max(8).optional(),
      on: z.string().min(1).max(12).optional(),
      keep: z.number().int().min(1).max(255),
    })
    .refine((a) => (a.every === undefined) !== (a.at === undefined), 'give exactly one of every or at'),
  scheduleList: z.strictObject({ volume: volumePath }),
  scheduleRemove: z.strictObject({ volume: volumePath, label: z.string().min(1).max(40) }),
  scheduleRun: z.strictObject({ volume: volumePath, dryRun: z.boolean().optional() }),
  // relationships
  mirrorList: z.strictObject({}),
  mirrorCreate: z.strictObject({
    name: label,
    source: volumePath,
    destination: pathText,
    kind: z.enum(['full', 'incremental', 'replica']),
    every: z.string().min(1).max(32).optional(),
    /** A time of day, HH:MM (local), instead of `every`; `on` a weekday with it. */
    at: z.string().min(1).max(8).optional(),
    on: z.string().min(1).max(12).optional(),
    slow: pathText.optional(),
    keyFile: pathText.optional(),
    /** Bytes per second into the destination (remote or local; refused for incremental mirrors). */
    limit: z.number().int().min(1024).max(2 ** 40).optional(),
  })
    .refine((a) => a.every === undefined || a.at === undefined, 'give at most one of every or at')
    .refine((a) => a.on === undefined || a.at !== undefined, 'on needs at'),
  /** Changes a relationship's schedule (`every`, or `at` [`on`], or `onDemand`), `limit` (null: none) or `keyFile`. */
  mirrorSet: z
    .strictObject({
      name: label,
      every: z.string().min(1).max(32).optional(),
      at: z.string().min(1).max(8).optional(),
      on: z.string().min(1).max(12).optional(),
      /** No schedule any more: updated only when asked. */
      onDemand: z.literal(true).optional(),
      limit: z.number().int().min(1024).max(2 ** 40).nullable().optional(),
      keyFile: pathText.optional(),
    })
    .refine((a) => [a.every, a.at, a.onDemand].filter((x) => x !== undefined).length <= 1, 'give at most one of every, at or onDemand')
    .refine((a) => a.on === undefined || a.at !== undefined, 'on needs at')
    .refine((a) => a.every !== undefined || a.at !== undefined || a.onDemand !== undefined || a.limit !== undefined || a.keyFile !== undefined, 'nothing to change: give a schedule, limit or keyFile'),
  mirrorBreak: z.strictObject({ name: label }),
  mirrorDelete: z.strictObject({ name: label }),
  /** What a replicate job with these arguments would send now (`replicate --dry-run`): nothing is sent. */
  replicatePreview: z.strictObject({ source: volumePath, destination: pathText, keyFile: pathText.optional() }),
  /** Whether users other than the owner can read a pre-shared key file (the warning `replicate` prints). */
  keyFileWarning: z.strictObject({ keyFile: pathText }),
} as const;

export type MethodName = keyof typeof methodArgs;
/** The argument object a method takes. */
export type MethodArgs<M extends MethodName> = z.input<(typeof methodArgs)[M]>;

/** What each method answers with. */
export interface MethodResults {
  hostInfo: HostInfo;
  volumeList: KnownVolume[];
  volumeOpen: VolumeInfo;
  volumeForget: null;
  volumeCreate: VolumeInfo;
  volumeInfo: VolumeInfo;
  volumeSync: number;
  fsck: FsckReport;
  ls: DirPage;
  mkdir: null;
  rm: null;
  mv: null;
  put: CopySummary;
  writeFile: CopySummary;
  snapList: SnapshotInfo[];
  snapCreate: SnapshotInfo;
  snapDelete: null;
  snapRename: null;
  snapHold: SnapshotInfo;
  masterMark: MasterInfo[];
  masterList: MasterInfo[];
  masterRelease: { destination: string; released: string[] };
  snapDiff: SnapshotDiff;
  space: SpaceReport;
  snapRestore: null;
  restoreToHost: CopySummary & { target: string };
  revertPreview: RevertPreview;
  snapRevert: null;
  planes: PlaneInfo[];
  planeTiles: PlaneTiles;
  blockInfo: BlockInfo;
  imageEval: ImageEvalReport;
  imageSave: SavedImage[];
  imageList: SavedImage[];
  imageDelete: SavedImage[];
  imagePlan: BackupPlan;
  sendDryRun: SendReport;
  jobStart: JobState;
  jobCancel: JobState;
  jobList: JobState[];
  jobHistory: JobHistoryEntry[];
  scheduleAdd: ScheduleInfo[];
  scheduleList: ScheduleInfo[];
  scheduleRemove: ScheduleInfo[];
  scheduleRun: ScheduleRunReport;
  mirrorList: MirrorInfo[];
  mirrorCreate: MirrorInfo;
  mirrorSet: MirrorSetReport;
  mirrorBreak: { relationship: string | null; destination: string; writable: boolean };
  mirrorDelete: MirrorInfo[];
  replicatePreview: ReplicateReport;
  keyFileWarning: { warning: string | null };
}
export type MethodResult<M extends MethodName> = MethodResults[M];

/** One past job, as the history keeps it (transfers and schedule runs). */
export interface JobHistoryEntry {
  id: number;
  kind: string;
  volume: string;
  target?: string;
  expression?: string;
  startedAt: string;
  finishedAt: string;
  outcome: 'ok' | 'error' | 'cancelled';
  phases?: string[];
  bytes?: number;
  error?: string;
  taken?: string[];
  pruned?: string[];
}

/** Every method name, in table order. */
export const METHOD_NAMES = Object.keys(methodArgs) as MethodName[];

/** True when `name` is a method of the table (own property only: never `toString` or `__proto__`). */
export function isMethodName(name: unknown): name is MethodName {
  return typeof name === 'string' && Object.prototype.hasOwnProperty.call(methodArgs, name);
}

// Compile-time check: the result table names exactly the methods of the argument table.
type Same<A, B> = [A] extends [B] ? ([B] extends [A] ? true : false) : false;
const _resultsMatch: Same<keyof MethodResults, MethodName> = true;
void _resultsMatch;

/** Event schemas: the renderer validates what it is pushed too. */
const wireError = z.object({ code: z.string(), message: z.string() }).passthrough();
export const jobStateSchema = z.object({
  id: z.number().int(),
  kind: z.enum(['copy', 'backup', 'restore', 'verify', 'mirror-update', 'mirror-resync', 'replicate']),
  title: z.string(),
  volume: z.string(),
  target: z.string(),
  state: z.enum(['running', 'ok', 'error', 'cancelled']),
  phase: z.string(),
  done: z.number(),
  total: z.number(),
  unit: z.enum(['blocks', 'bytes', 'files', 'items']),
  rate: z.number(),
  etaSeconds: z.number().nullable(),
  startedAt: z.string(),
  finishedAt: z.string().nullable(),
  updates: z.number().int(),
  error: wireError.nullable(),
  result: z.unknown(),
});
export const consoleEventSchema = z.discriminatedUnion('type', [
  z.object({ type: z.literal('job'), job: jobStateSchema }),
  z.object({ type: z.literal('volumeChanged'), volume: z.string(), reason: z.string() }),
  z.object({ type: z.literal('scheduleRan'), report: z.object({ volume: z.string(), take: z.array(z.string()), prune: z.array(z.string()) }).passthrough() }),
]);

/** One request on a message transport (WebSocket, worker port). */
export const requestSchema = z.strictObject({ id: z.number().int().min(0).max(Number.MAX_SAFE_INTEGER), method: z.string().max(64), args: z.unknown().optional() });
export type Request = z.infer<typeof requestSchema>;

/** What a transport answers for one call. */
export type Reply<M extends MethodName = MethodName> = { ok: true; result: MethodResult<M> } | { ok: false; error: import('./console-types.js').WireError };

/**
 * What Electron's preload exposes to the renderer as `window.snapplane`: one function per method (each answers a
 * Reply, so typed errors cross IPC intact), the event subscription, and the native folder dialog.
 */
export type SnapplaneBridge = { readonly [M in MethodName]: (args: MethodArgs<M>) => Promise<Reply<M>> } & {
  onEvent(listener: (event: unknown) => void): () => void;
  pickFolder(): Promise<string | null>;
};
