/**
 * The transport-agnostic router: takes a method name and an argument object from any transport (WebSocket, Electron
 * IPC via the engine worker, a test), validates the arguments with the contract's zod schemas, calls the facade and
 * answers `{ ok: true, result }` or `{ ok: false, error }` with the error as `SnapplaneError.toJSON()` gives it. It
 * never throws: a malformed call is a validation error, an engine failure is a typed error, anything else INTERNAL.
 */
import { isAbsolute, resolve as resolvePath } from 'node:path';
import type { z } from 'zod';
import { MAX_UPLOAD_BYTES, isMethodName, methodArgs, type MethodName, type MethodResults, type Reply } from '../api/methods.js';
import type { ConsoleEvent, HostInfo, KnownVolume } from '../api/console-types.js';
import { SnapplaneError } from '../common/errors.js';
import { cadenceOf } from '../jobs/cadence.js';
import { wireError, type JobBroker } from './job-broker.js';
import type { SnapplaneService } from './service.js';

export type { Reply };

export interface RouterContext {
  service: SnapplaneService;
  jobs: JobBroker;
  emit: (e: ConsoleEvent) => void;
  hostInfo: () => HostInfo;
}

type Parsed<M extends MethodName> = z.output<(typeof methodArgs)[M]>;
type Handlers = { [M in MethodName]: (a: Parsed<M>) => Promise<MethodResults[M]> };

/** Largest upload through `writeFile`. */

/** Methods that change a volume: the router commits them (one CP, so other processes see the change) and says so. */
const CHANGES: Partial<Record<MethodName, true>> = {
  mkdir: true,
  rm: true,
  mv: true,
  put: true,
  writeFile: true,
  snapCreate: true,
  snapDelete: true,
  snapRename: true,
  snapHold: true,
  masterMark: true,
  masterRelease: true,
  snapRestore: true,
  snapRevert: true,
  scheduleRun: true,
};

/** `host:port/name`: a remote destination rather than a host path. */
const isRemote = (p: string): boolean => /^[^/]+:\d+\//.test(p);

/**
 * The host paths among a call's arguments (volumes, backup files, key files, imports), leaving out paths inside a
 * volume, remote destinations and the restore folder (which host-restore checks with rules of its own).
 */
function hostPathsOf(method: MethodName, a: Record<string, unknown>): string[] {
  const out: string[] = [];
  const add = (p: unknown): void => {
    if (typeof p === 'string' && !isRemote(p)) out.push(p);
  };
  add(a.volume);
  add(a.inVolume);
  switch (method) {
    case 'volumeOpen':
    case 'volumeCreate':
    case 'volumeForget':
      add(a.path);
      break;
    case 'put':
      add(a.hostPath);
      break;
    case 'masterRelease':
      add(a.destination);
      break;
    case 'mirrorCreate':
      add(a.source);
      add(a.destination);
      add(a.keyFile);
      if (typeof a.slow === 'string') add(a.slow.replace(/^(file|tape):/, ''));
      break;
    case 'mirrorSet':
      add(a.keyFile);
      break;
    case 'keyFileWarning':
    case 'replicatePreview':
    case 'jobStart':
      add(a.source);
      add(a.destination);
      add(a.keyFile);
      // Backup files inside a volume (`inVolume`) are paths in that volume, not on the host.
      if (a.inVolume === undefined) {
        add(a.file);
        if (Array.isArray(a.files)) a.files.forEach(add);
      }
      break;
    default:
  }
  return out;
}

/**
 * Refuses a relative host path: the host would resolve it against the folder it happened to be started in, and a
 * volume or backup would land somewhere the user never chose. Both hosts (web and Electron) route through here.
 */
function requireFullPaths(method: MethodName, a: unknown): void {
  for (const p of hostPathsOf(method, a as Record<string, unknown>)) {
    if (!isAbsolute(p)) throw new SnapplaneError('INVALID', `'${p}' is not a full path: give a full path, e.g. /data/vol.img`, { path: p });
  }
}

export interface Router {
  call(method: unknown, args: unknown): Promise<Reply>;
}

export function createRouter(ctx: RouterContext): Router {
  const s = ctx.service;
  const abs = (p: string): string => resolvePath(p);
  const refOf = (a: { volume: string; snapshot?: string }): { volume: string; snapshot?: string } => (a.snapshot === undefined || a.snapshot === 'active' ? { volume: a.volume } : { volume: a.volume, snapshot: a.snapshot });

  const handlers: Handlers = {
    hostInfo: async () => ctx.hostInfo(),
    volumeList: async () => {
      const out: KnownVolume[] = [];
      for (const path of await s.knownVolumes()) {
        try {
          out.push({ path, info: await s.volumeInfo({ volume: path }), error: null });
        } catch (e) {
          out.push({ path, info: null, error: wireError(e) });
        }
      }
      return out;
    },
    volumeOpen: async (a) => {
      const info = await s.volumeInfo({ volume: abs(a.path) });
      await s.rememberVolume(abs(a.path));
      return info;
    },
    volumeForget: async (a) => {
      await s.close(abs(a.path));
      await s.rememberVolume(abs(a.path), false);
      return null;
    },
    volumeCreate: async (a) => {
      const info = await s.createVolume(abs(a.path), a.sizeBytes, a.raid === undefined ? {} : { raid: a.raid });
      await s.rememberVolume(abs(a.path));
      return info;
    },
    volumeInfo: (a) => s.volumeInfo(refOf(a)),
    volumeSync: (a) => s.sync(a.volume),
    fsck: (a) => s.fsck(a.volume),
    ls: async (a) => {
      const all = await s.ls(refOf(a), a.path);
      const offset = a.offset ?? 0;
      const limit = a.limit ?? 1000;
      return { path: a.path, entries: all.slice(offset, offset + limit), total: all.length, offset };
    },
    mkdir: async (a) => {
      await s.mkdir(a.volume, a.path, a.parents === true);
      return null;
    },
    rm: async (a) => {
      await s.rm(a.volume, a.path, a.recursive === true);
      return null;
    },
    mv: async (a) => {
      await s.mv(a.volume, a.from, a.to);
      return null;
    },
    put: (a) => s.put(a.volume, a.hostPath, a.path),
    writeFile: async (a) => {
      const data = Buffer.from(a.base64, 'base64');
      if (data.length > MAX_UPLOAD_BYTES) throw new SnapplaneError('LIMIT', `an upload is at most ${MAX_UPLOAD_BYTES / 2 ** 20} MiB; import bigger files with put (a host path)`);
      return s.writeFile(a.volume, a.path, data);
    },
    snapList: (a) => s.snapList({ volume: a.volume }),
    snapCreate: (a) => s.snapCreate(a.volume, a.name, a.shadow === true),
    snapDelete: async (a) => {
      await s.snapDelete(a.volume, a.name);
      return null;
    },
    snapRename: async (a) => {
      await s.snapRename(a.volume, a.from, a.to);
      return null;
    },
    snapHold: (a) => s.snapHold(a.volume, a.name, a.hold),
    masterMark: (a) => s.masterMark(a.volume, a.name, a.mark),
    masterList: (a) => s.masterList(a.volume),
    masterRelease: (a) => s.masterRelease(a.volume, a.destination),
    snapDiff: (a) => s.snapDiff(a.volume, a.older, a.newer),
    space: (a) => s.space(a.volume, a.names),
    snapRestore: async (a) => {
      await s.snapRestore(a.volume, a.snapshot, a.path, a.to);
      return null;
    },
    restoreToHost: (a) => s.restoreToHost(a.volume, a.snapshot, a.path, a.folder, a.name),
    revertPreview: (a) => s.revertPreview(a.volume, a.snapshot),
    snapRevert: async (a) => {
      await s.snapRevert(a.volume, a.snapshot);
      return null;
    },
    planes: (a) => s.planes(a.volume),
    planeTiles: (a) => s.planeTiles(a.volume, a),
    blockInfo: (a) => s.blockInfo(a.volume, a.vbn, a.count ?? 1),
    imageEval: (a) => s.imageEval(a.volume, a.expression),
    imageSave: (a) => s.imageSave(a.volume, a.name, a.expression),
    imageList: (a) => s.imageList(a.volume),
    imageDelete: (a) => s.imageDelete(a.volume, a.name),
    imagePlan: (a) => s.imagePlan(a.volume, a.policy, a.at),
    sendDryRun: (a) => s.sendDryRun(a.volume, a.expression),
    jobStart: async (a) => ctx.jobs.start(a),
    jobCancel: async (a) => ctx.jobs.cancel(a.id),
    jobList: async () => ctx.jobs.list(),
    jobHistory: async (a) => (await s.jobHistory()).slice(-(a.limit ?? 100)).reverse(),
    scheduleAdd: (a) => s.scheduleAdd(a.volume, a.label, cadenceOf(a), a.keep),
    scheduleList: (a) => s.scheduleList(a.volume),
    scheduleRemove: async (a) => {
      await s.scheduleRemove(a.volume, a.label);
      return s.scheduleList(a.volume);
    },
    scheduleRun: (a) => s.scheduleRun(a.volume, { dryRun: a.dryRun === true }),
    mirrorList: () => s.mirrorList(),
    replicatePreview: (a) => s.replicate(abs(a.source), isRemote(a.destination) ? a.destination : abs(a.destination), { keyFile: a.keyFile, dryRun: true }),
    keyFileWarning: async (a) => ({ warning: await s.keyFileWarning(abs(a.keyFile)) }),
    mirrorCreate: (a) => s.mirrorCreate(a.name, abs(a.source), isRemote(a.destination) ? a.destination : abs(a.destination), { kind: a.kind, schedule: a.every === undefined && a.at === undefined ? undefined : cadenceOf(a), slow: a.slow, keyFile: a.keyFile, limit: a.limit }),
    mirrorSet: (a) => s.mirrorSet(a.name, { schedule: a.onDemand ? null : a.every === undefined && a.at === undefined ? undefined : cadenceOf(a), limit: a.limit, keyFile: a.keyFile }),
    mirrorBreak: (a) => s.mirrorBreak(a.name),
    mirrorDelete: async (a) => {
      await s.mirrorDelete(a.name);
      return s.mirrorList();
    },
  };

  async function dispatch<M extends MethodName>(method: M, args: unknown): Promise<Reply> {
    const parsed = methodArgs[method].safeParse(args ?? {});
    if (!parsed.success) {
      const issues = parsed.error.issues.map((i) => ({ path: i.path.map(String).join('.') || '(arguments)', message: i.message }));
      return { ok: false, error: { code: 'INVALID', message: `${method}: ${issues.map((i) => `${i.path} ${i.message}`).join('; ')}`, issues } };
    }
    const a = parsed.data as Parsed<M>;
    requireFullPaths(method, a);
    const result = await (handlers[method] as (x: Parsed<M>) => Promise<MethodResults[M]>)(a);
    if (CHANGES[method] && typeof (a as { volume?: unknown }).volume === 'string') {
      const volume = (a as unknown as { volume: string }).volume;
      if (method !== 'scheduleRun' || !(a as { dryRun?: boolean }).dryRun) {
        await s.sync(volume).catch(() => undefined); // commit now: the CLI and other readers see what the console shows
        ctx.emit({ type: 'volumeChanged', volume: abs(volume), reason: method });
      }
    }
    return { ok: true, result };
  }

  return {
    async call(method: unknown, args: unknown): Promise<Reply> {
      if (!isMethodName(method)) {
        return { ok: false, error: { code: 'INVALID', message: `unknown method '${String(method).slice(0, 64)}'` } };
      }
      try {
        return await dispatch(method, args);
      } catch (e) {
        return { ok: false, error: wireError(e) };
      }
    },
  };
}
