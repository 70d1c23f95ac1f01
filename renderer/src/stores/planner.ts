/**
 * The backup planner: a level policy (cadence per level) and a retention, the engine's exact plan for the
 * volume's real snapshots (imagePlan), a restore date's chain, and turning the policy into real schedules.
 */
import { create } from 'zustand';
import type { BackupPlan, BackupPoint, ScheduleInfo } from '../../../core/api/index.js';
import { errorText } from '../client/client.js';
import { client } from '../client/current.js';
import { useVolumes } from './volumes.js';

export interface PlannerState {
  /** Cadence per level, level 0 first (e.g. ["7d", "1d"]). */
  levels: string[];
  /** Level-0 cycles kept (a cycle: a level-0 point and the points after it up to the next level 0). */
  retention: number;
  /** ISO local date-time to restore, or ''. */
  at: string;
  plan: BackupPlan | null;
  /** Why the engine rejected the policy (or could not plan with it); no schedule is made from it meanwhile. */
  policyError: string | null;
  error: string | null;
  schedules: ScheduleInfo[];
  notice: string | null;
  setLevels(levels: string[]): void;
  setRetention(n: number): void;
  setAt(at: string): void;
  compute(): Promise<void>;
  loadSchedules(): Promise<void>;
  createSchedule(label: string): Promise<void>;
  removeSchedule(label: string): Promise<void>;
}

export function policyText(levels: string[]): string {
  return levels.map((every, level) => `${level}=${every.trim()}`).join(',');
}

let seq = 0;

export const usePlanner = create<PlannerState>()((set, get) => ({
  levels: ['7d', '1d'],
  retention: 2,
  at: '',
  plan: null,
  policyError: null,
  error: null,
  schedules: [],
  notice: null,

  setLevels(levels) {
    set({ levels });
    void get().compute();
  },
  setRetention(n) {
    set({ retention: Math.max(1, Math.floor(n) || 1) });
  },
  setAt(at) {
    set({ at });
    void get().compute();
  },

  async compute() {
    const volume = useVolumes.getState().current;
    if (!volume) return;
    const mine = ++seq;
    try {
      const at = get().at ? new Date(get().at).toISOString() : undefined;
      const plan = await client().call('imagePlan', at ? { volume, policy: policyText(get().levels), at } : { volume, policy: policyText(get().levels) });
      if (mine === seq) set({ plan, policyError: null, error: null });
    } catch (e) {
      if (mine === seq) set({ plan: null, policyError: errorText(e), error: errorText(e) });
    }
  },

  async loadSchedules() {
    const volume = useVolumes.getState().current;
    if (!volume) return;
    try {
      set({ schedules: await client().call('scheduleList', { volume }), notice: null }); // a notice was about the volume before
    } catch (e) {
      set({ error: errorText(e) });
    }
  },

  async createSchedule(label) {
    const volume = useVolumes.getState().current;
    if (!volume) return;
    const { levels, retention, policyError } = get();
    if (policyError) return set({ notice: null }); // the button is disabled meanwhile; this guards other callers
    const finest = levels[levels.length - 1];
    try {
      const keep = snapshotsToKeep(levels, retention);
      const schedules = await client().call('scheduleAdd', { volume, label, every: finest, keep });
      set({ schedules, notice: `schedule ${label}: a snapshot every ${finest}, keeping the newest ${keep}`, error: null });
    } catch (e) {
      set({ error: errorText(e), notice: null });
    }
  },

  async removeSchedule(label) {
    const volume = useVolumes.getState().current;
    if (!volume) return;
    try {
      set({ schedules: await client().call('scheduleRemove', { volume, label }) });
    } catch (e) {
      set({ error: errorText(e) });
    }
  },
}));

const UNIT_MS: Record<string, number> = { s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000, w: 604_800_000 };

/** Milliseconds of an interval like "7d" (null when it is not one). */
export function intervalMs(text: string): number | null {
  const m = /^\s*(\d+)\s*([smhdw])\s*$/.exec(text);
  return m ? Number(m[1]) * UNIT_MS[m[2]] : null;
}

/** Snapshots a schedule at the finest cadence must keep so `retention` level-0 cycles stay restorable. */
export function snapshotsToKeep(levels: string[], retention: number): number {
  const coarse = intervalMs(levels[0] ?? '') ?? 0;
  const fine = intervalMs(levels[levels.length - 1] ?? '') ?? 0;
  if (coarse <= 0 || fine <= 0) return Math.max(1, retention);
  return Math.min(255, Math.max(1, Math.ceil((coarse * retention) / fine) + 1));
}

/** The points retention keeps: those of the newest `retention` level-0 cycles. */
export function keptPoints(points: BackupPoint[], retention: number): BackupPoint[] {
  const starts = points.map((p, i) => (p.level === 0 ? i : -1)).filter((i) => i >= 0);
  if (starts.length === 0) return points;
  const from = starts[Math.max(0, starts.length - retention)];
  return points.slice(from);
}

export interface PlannerDay {
  day: string;
  /** Bytes per level that day: `level0`, `level1`, … */
  [level: string]: number | string;
}

/** Per day: the bytes of each level's backups that day. */
export function perDay(points: BackupPoint[], levels: number): PlannerDay[] {
  const days = new Map<string, PlannerDay>();
  for (const p of points) {
    const day = p.at.slice(0, 10);
    let d = days.get(day);
    if (!d) {
      d = { day };
      for (let l = 0; l < levels; l++) d[`level${l}`] = 0;
      days.set(day, d);
    }
    d[`level${p.level}`] = (d[`level${p.level}`] as number) + p.bytes;
  }
  return [...days.values()].sort((a, b) => a.day.localeCompare(b.day));
}

