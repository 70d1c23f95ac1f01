/** Jobs: live state from the host's job events, throughput samples for the chart, and the persisted history. */
import { create } from 'zustand';
import type { JobHistoryEntry, JobSpec, JobState } from '../../../core/api/index.js';
import { errorText } from '../client/client.js';
import { client } from '../client/current.js';

export interface ThroughputSample {
  /** Seconds since the job started. */
  t: number;
  rate: number;
  done: number;
}

export interface JobsState {
  jobs: Record<number, JobState>;
  samples: Record<number, ThroughputSample[]>;
  /** Progress events received per job (what reached the screen). */
  received: Record<number, number>;
  history: JobHistoryEntry[];
  error: string | null;
  jobEvent(job: JobState): void;
  start(spec: JobSpec): Promise<JobState | null>;
  cancel(id: number): Promise<void>;
  refresh(): Promise<void>;
}

const MAX_SAMPLES = 600;

export const useJobs = create<JobsState>()((set, get) => ({
  jobs: {},
  samples: {},
  received: {},
  history: [],
  error: null,

  jobEvent(job) {
    const s = get();
    const started = Date.parse(job.startedAt);
    const list = s.samples[job.id] ?? [];
    const sample = { t: Math.max(0, (Date.now() - started) / 1000), rate: job.rate, done: job.done };
    set({
      jobs: { ...s.jobs, [job.id]: job },
      samples: { ...s.samples, [job.id]: [...list, sample].slice(-MAX_SAMPLES) },
      received: { ...s.received, [job.id]: (s.received[job.id] ?? 0) + 1 },
    });
    if (job.state !== 'running') void get().refresh();
  },

  async start(spec) {
    try {
      const job = await client().call('jobStart', spec);
      if (!get().jobs[job.id]) set({ jobs: { ...get().jobs, [job.id]: job }, error: null });
      return job;
    } catch (e) {
      set({ error: errorText(e) });
      return null;
    }
  },

  async cancel(id) {
    try {
      await client().call('jobCancel', { id });
    } catch (e) {
      set({ error: errorText(e) });
    }
  },

  async refresh() {
    try {
      const [list, history] = await Promise.all([client().call('jobList', {}), client().call('jobHistory', { limit: 100 })]);
      const jobs = { ...get().jobs };
      for (const j of list) if (!jobs[j.id] || jobs[j.id].updates <= j.updates) jobs[j.id] = j;
      set({ jobs, history });
    } catch (e) {
      set({ error: errorText(e) });
    }
  },
}));

/** Running jobs first (newest first), then finished ones. */
export function selectJobList(s: Pick<JobsState, 'jobs'>): JobState[] {
  return Object.values(s.jobs).sort((a, b) => (a.state === 'running') === (b.state === 'running') ? b.id - a.id : a.state === 'running' ? -1 : 1);
}

/** Percent done of a job. */
export function jobPercent(j: JobState): number {
  if (j.state === 'ok') return 100;
  return j.total > 0 ? Math.min(100, (100 * j.done) / j.total) : 0;
}
