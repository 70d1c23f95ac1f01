/**
 * Console jobs: starts a transfer through the facade and returns at once, samples its progress (phase, done of
 * total, a smoothed rate, ETA) and pushes it as events several times a second, cancels one job on request, and
 * keeps the jobs of this session. The facade records each outcome in the persisted job history.
 */
import { resolve as resolvePath } from 'node:path';
import type { ConsoleEvent, JobKind, JobState, WireError } from '../api/console-types.js';
import type { JobSpec } from '../api/methods.js';
import type { ProgressEvent } from '../api/types.js';
import { SnapplaneError } from '../common/errors.js';
import { parseRemote } from '../transfer/destination.js';
import { jobSignalScope, type JobSignal } from './job-signal.js';
import type { SnapplaneService } from './service.js';

/** An error as a transport carries it. */
export function wireError(e: unknown): WireError {
  if (e instanceof SnapplaneError) return e.toJSON() as unknown as WireError;
  return { code: 'INTERNAL', message: e instanceof Error ? e.message : String(e) };
}

export interface JobBrokerOptions {
  /** How often progress is pushed while a job runs (default 125 ms: 8 per second). */
  sampleMs?: number;
  /** Finished jobs kept in the session list. */
  keep?: number;
}

interface Running {
  state: JobState;
  signal: JobSignal;
  last: ProgressEvent | null;
  /** Progress reports of the current phase in the last RATE_WINDOW_MS: when, and how much was done. */
  window: { t: number; done: number }[];
  timer: NodeJS.Timeout | null;
}

/** The rate is measured over this window of progress reports. */
const RATE_WINDOW_MS = 2000;

function describe(spec: JobSpec): { kind: JobKind; title: string; volume: string; target: string } {
  switch (spec.kind) {
    case 'copy':
      return { kind: 'copy', title: `copy ${spec.expression} from ${spec.source} to ${spec.destination}`, volume: spec.source, target: spec.destination };
    case 'backup':
      return { kind: 'backup', title: `back up ${spec.expression} of ${spec.volume} to ${spec.file}`, volume: spec.volume, target: spec.file };
    case 'restore':
      return { kind: 'restore', title: `restore ${spec.files.join(', ')} into ${spec.volume}`, volume: spec.volume, target: spec.files.join(' ') };
    case 'verify':
      return { kind: 'verify', title: `verify ${spec.files.join(', ')}`, volume: spec.files[0], target: spec.files.join(' ') };
    case 'mirror-update':
      return { kind: 'mirror-update', title: `update mirror ${spec.name}`, volume: spec.name, target: spec.name };
    case 'mirror-resync':
      return { kind: 'mirror-resync', title: `resync mirror ${spec.name}${spec.reverse ? ' (reversed)' : spec.full ? ' (full copy)' : ''}${spec.discard ? ', discarding what only the mirror holds' : ''}`, volume: spec.name, target: spec.name };
    case 'replicate':
      return { kind: 'replicate', title: `replicate ${spec.source} to ${spec.destination}`, volume: spec.source, target: spec.destination };
  }
}

export class JobBroker {
  private readonly jobs = new Map<number, Running>();
  private readonly finished: JobState[] = [];
  private nextId = 1;
  private readonly sampleMs: number;
  private readonly keep: number;

  constructor(
    private readonly service: SnapplaneService,
    private readonly emit: (e: ConsoleEvent) => void,
    options: JobBrokerOptions = {},
  ) {
    this.sampleMs = options.sampleMs ?? 125;
    this.keep = options.keep ?? 100;
  }

  /**
   * Starts a job; it runs in the background and reports through events. Its id is the one its job-history record
   * gets, so the card, the History table and `snapplane jobs` say the same number.
   */
  async start(spec: JobSpec): Promise<JobState> {
    const d = describe(spec);
    const historyId = await this.service.reserveJobId().catch(() => null);
    const now = Date.now();
    const id = historyId ?? -this.nextId++; // without the state file: a number no history record has
    const job: Running = {
      state: {
        id,
        ...d,
        state: 'running',
        phase: 'start',
        done: 0,
        total: 0,
        unit: 'bytes',
        rate: 0,
        etaSeconds: null,
        startedAt: new Date(now).toISOString(),
        finishedAt: null,
        updates: 0,
        error: null,
        result: null,
      },
      signal: { cancelled: false, ...(historyId === null ? {} : { historyId }) },
      last: null,
      window: [],
      timer: null,
    };
    this.jobs.set(job.state.id, job);
    job.timer = setInterval(() => this.flush(job), this.sampleMs);
    job.timer.unref();
    const progress = (p: ProgressEvent): void => {
      const phaseChanged = job.last?.phase !== p.phase || job.last.unit !== p.unit || p.done < job.last.done;
      if (phaseChanged) job.window = [];
      job.last = p;
      const t = Date.now();
      job.window.push({ t, done: p.done });
      while (job.window.length > 2 && t - job.window[0].t > RATE_WINDOW_MS) job.window.shift();
      if (phaseChanged) this.flush(job);
    };
    void jobSignalScope.run(job.signal, () => this.run(spec, progress)).then(
      async (result) => {
        const landed = await this.rememberDestination(spec).catch(() => null);
        this.finish(job, 'ok', result, null, landed);
      },
      async (e: unknown) => {
        const outcome = job.signal.cancelled || (e instanceof SnapplaneError && e.code === 'CANCELLED') ? 'cancelled' : 'error';
        // No transfer took the reserved history id: the job was refused before one began. Recorded all the same
        // (a verify is no transfer: the history has none of them).
        const unrecorded = job.signal.historyId;
        if (unrecorded !== undefined && outcome === 'error' && d.kind !== 'verify') {
          // A relationship's job is recorded as its transfers are: from its source, to its destination.
          const rel = d.kind === 'mirror-update' || d.kind === 'mirror-resync' ? await this.service.mirrorStatus(d.target).catch(() => null) : null;
          await this.service.recordRefusedJob(unrecorded, d.kind, rel?.source ?? d.volume, rel?.destination ?? d.target, job.state.startedAt, e instanceof Error ? e.message : String(e)).catch(() => undefined);
        }
        this.finish(job, outcome, null, wireError(e));
      },
    );
    this.emit({ type: 'job', job: { ...job.state } });
    return { ...job.state };
  }

  private async run(spec: JobSpec, progress: (p: ProgressEvent) => void): Promise<unknown> {
    const s = this.service;
    switch (spec.kind) {
      case 'copy':
        return s.copy(spec.source, spec.destination, spec.expression, { force: spec.force }, progress);
      case 'backup':
        return s.sendToFile(spec.volume, spec.expression, spec.file, { codec: spec.compress ?? 'none', inVolume: spec.inVolume, force: spec.force }, progress);
      case 'restore':
        return s.restore(spec.volume, spec.files, { inVolume: spec.inVolume === undefined ? undefined : { volume: spec.inVolume } }, progress);
      case 'verify': {
        progress({ phase: 'verify', done: 0, total: spec.files.length, unit: 'files' });
        const r = await s.verify(spec.files, { inVolume: spec.inVolume === undefined ? undefined : { volume: spec.inVolume } });
        progress({ phase: 'verify', done: spec.files.length, total: spec.files.length, unit: 'files' });
        if (!r.ok) throw new SnapplaneError('BAD_STREAM', r.chain ?? r.backups.find((b) => !b.ok)?.error ?? 'verification failed');
        return r;
      }
      case 'mirror-update':
        return s.mirrorUpdate(spec.name, progress);
      case 'mirror-resync':
        return s.mirrorResync(spec.name, { reverse: spec.reverse, full: spec.full, discard: spec.discard }, progress);
      case 'replicate':
        return s.replicate(spec.source, spec.destination, { keyFile: spec.keyFile, limit: spec.limit }, progress);
    }
  }

  /**
   * Pushes the job's state: on every tick while it runs (the engine reports progress as records land, which on a
   * slow link can be less often than the screen wants; the rate and ETA still move), and at each new phase.
   */
  private flush(job: Running): void {
    if (job.state.state !== 'running') return;
    const st = job.state;
    const p = job.last;
    if (p) {
      const now = Date.now();
      const first = job.window[0];
      // Done over the window, up to now: a stall shows as a falling rate.
      st.rate = first && now - first.t > 50 ? Math.max(0, ((p.done - first.done) * 1000) / (now - first.t)) : st.phase === p.phase ? st.rate : 0;
      st.phase = p.phase;
      st.unit = p.unit;
      st.done = p.done;
      st.total = p.total;
      st.etaSeconds = st.rate > 0 && p.total >= p.done ? (p.total - p.done) / st.rate : null;
    }
    st.updates++;
    this.emit({ type: 'job', job: { ...st } });
  }

  /**
   * A local volume a copy, replication or mirror update wrote becomes a known volume of this host, so it can be
   * browsed (read-only while it is a mirror) and serve as the source of a cascade. Returns it.
   */
  private async rememberDestination(spec: JobSpec): Promise<string | null> {
    let destination: string | null = null;
    if (spec.kind === 'copy' || spec.kind === 'replicate') destination = spec.destination;
    else if (spec.kind === 'mirror-update' || spec.kind === 'mirror-resync') {
      const m = await this.service.mirrorStatus(spec.name);
      if (m.kind !== 'incremental') destination = m.destination; // an incremental mirror's destination is a folder
    }
    if (destination === null || parseRemote(destination)) return null;
    const path = resolvePath(destination);
    await this.service.rememberVolume(path);
    return path;
  }

  private finish(job: Running, outcome: JobState['state'], result: unknown, error: WireError | null, landed: string | null = null): void {
    if (job.timer) clearInterval(job.timer);
    this.flush(job);
    const st = job.state;
    st.state = outcome;
    st.finishedAt = new Date().toISOString();
    st.result = result ?? null;
    st.error = error;
    if (outcome === 'ok') {
      if (st.total > 0) st.done = st.total;
      st.etaSeconds = 0;
    }
    st.updates++;
    this.jobs.delete(st.id);
    this.finished.push(st);
    if (this.finished.length > this.keep) this.finished.shift();
    this.emit({ type: 'job', job: { ...st } });
    for (const v of new Set([...this.touched(st), ...(landed ? [landed] : [])])) this.emit({ type: 'volumeChanged', volume: v, reason: `${st.kind} job ${st.id} ${outcome}` });
  }

  /** Volumes a job may have changed. */
  private touched(st: JobState): string[] {
    if (st.kind === 'copy' || st.kind === 'replicate') return [resolvePath(st.target)];
    if (st.kind === 'restore') return [resolvePath(st.volume)];
    return [];
  }

  /** Asks a running job to stop; a receive stays at its base and keeps its resume token. */
  cancel(id: number): JobState {
    const job = this.jobs.get(id);
    if (!job) {
      const done = this.finished.find((j) => j.id === id);
      if (done) return { ...done };
      throw new SnapplaneError('NOT_FOUND', `no job ${id}`);
    }
    job.signal.cancelled = true;
    return { ...job.state };
  }

  /** Running jobs, then the finished ones of this session (newest first). */
  list(): JobState[] {
    return [...[...this.jobs.values()].map((j) => ({ ...j.state })), ...[...this.finished].reverse().map((j) => ({ ...j }))];
  }

  /** Cancels every running job and waits (up to `ms`) for them to end. */
  async stopAll(ms = 10_000): Promise<void> {
    for (const j of this.jobs.values()) j.signal.cancelled = true;
    const until = Date.now() + ms;
    while (this.jobs.size > 0 && Date.now() < until) await new Promise((r) => setTimeout(r, 20));
  }
}
