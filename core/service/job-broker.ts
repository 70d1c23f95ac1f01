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
import { jobSignalScope } from './job-signal.js';
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
  signal: { cancelled: boolean };
  last: ProgressEvent | null;
  dirty: boolean;
  /** For the rate: the last sample's time and amount. */
  sampleAt: number;
  sampleDone: number;
  sampleTotal: number;
  timer: NodeJS.Timeout | null;
}

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
      return { kind: 'mirror-resync', title: `resync mirror ${spec.name}${spec.reverse ? ' (reversed)' : ''}`, volume: spec.name, target: spec.name };
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

  /** Starts a job; it runs in the background and reports through events. */
  start(spec: JobSpec): JobState {
    const d = describe(spec);
    const now = Date.now();
    const job: Running = {
      state: {
        id: this.nextId++,
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
      signal: { cancelled: false },
      last: null,
      dirty: false,
      sampleAt: now,
      sampleDone: 0,
      sampleTotal: 0,
      timer: null,
    };
    this.jobs.set(job.state.id, job);
    job.timer = setInterval(() => this.flush(job), this.sampleMs);
    job.timer.unref();
    const progress = (p: ProgressEvent): void => {
      const phaseChanged = job.last?.phase !== p.phase;
      job.last = p;
      job.dirty = true;
      if (phaseChanged) this.flush(job);
    };
    void jobSignalScope.run(job.signal, () => this.run(spec, progress)).then(
      (result) => this.finish(job, 'ok', result, null),
      (e: unknown) => this.finish(job, job.signal.cancelled || (e instanceof SnapplaneError && e.code === 'CANCELLED') ? 'cancelled' : 'error', null, wireError(e)),
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
        return s.sendToFile(spec.volume, spec.expression, spec.file, { codec: spec.compress ?? 'none' }, progress);
      case 'restore':
        return s.restore(spec.volume, spec.files, {}, progress);
      case 'verify': {
        progress({ phase: 'verify', done: 0, total: spec.files.length, unit: 'files' });
        const r = await s.verify(spec.files);
        progress({ phase: 'verify', done: spec.files.length, total: spec.files.length, unit: 'files' });
        if (!r.ok) throw new SnapplaneError('BAD_STREAM', r.chain ?? r.backups.find((b) => !b.ok)?.error ?? 'verification failed');
        return r;
      }
      case 'mirror-update':
        return s.mirrorUpdate(spec.name, progress);
      case 'mirror-resync':
        return s.mirrorResync(spec.name, { reverse: spec.reverse }, progress);
      case 'replicate':
        return s.replicate(spec.source, spec.destination, { keyFile: spec.keyFile }, progress);
    }
  }

  /** Pushes the job's state when it changed since the last push. */
  private flush(job: Running): void {
    if (!job.dirty || !job.last || job.state.state !== 'running') return;
    job.dirty = false;
    const p = job.last;
    const now = Date.now();
    const st = job.state;
    if (p.phase !== st.phase || p.unit !== st.unit || p.done < job.sampleDone) {
      // A new phase starts its own rate.
      job.sampleAt = now;
      job.sampleDone = p.done;
      st.rate = 0;
    } else if (now > job.sampleAt) {
      const instant = ((p.done - job.sampleDone) * 1000) / (now - job.sampleAt);
      st.rate = st.rate === 0 ? instant : 0.7 * st.rate + 0.3 * instant;
      job.sampleAt = now;
      job.sampleDone = p.done;
    }
    st.phase = p.phase;
    st.unit = p.unit;
    st.done = p.done;
    st.total = p.total;
    st.etaSeconds = st.rate > 0 && p.total >= p.done ? (p.total - p.done) / st.rate : null;
    st.updates++;
    this.emit({ type: 'job', job: { ...st } });
  }

  private finish(job: Running, outcome: JobState['state'], result: unknown, error: WireError | null): void {
    if (job.timer) clearInterval(job.timer);
    job.dirty = true;
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
    for (const v of this.touched(st)) this.emit({ type: 'volumeChanged', volume: v, reason: `${st.kind} job ${st.id} ${outcome}` });
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
