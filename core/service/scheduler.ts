/**
 * Snapshot schedules with retention: which snapshots are due, which ones a policy prunes, and the exact space
 * pruning frees (from the planes). Pruning never removes a held snapshot, nor one a retention guard protects
 * (master snapshots that a destination may still need: the replication work fills in that guard).
 */
import type { SnapshotInfo } from '../api/types.js';
import { lastSlot, madeBy, snapshotNameFor, type Cadence } from '../jobs/cadence.js';
import type { ScheduleRecord } from './state-store.js';

/** Says why a snapshot must be kept, or null when pruning may delete it. */
export type RetentionGuard = (volume: string, snapshot: SnapshotInfo) => string | null;

/** The built-in guard: holds. (The service adds one for master snapshots that a known destination still needs.) */
export const defaultGuards: RetentionGuard[] = [(_v, s) => (s.flags.hold ? 'held' : null)];

export interface SchedulePlan {
  take: { label: string; name: string; slot: number }[];
  prune: { label: string; name: string }[];
  kept: { name: string; reason: string }[];
}

/** Whether a schedule's current slot has no snapshot of it yet (`made`: the volume's snapshots and when each was taken). */
export function isDue(label: string, cadence: Cadence, made: { name: string; at: number }[], now: number): boolean {
  const newest = Math.max(-Infinity, ...made.filter((s) => madeBy(label, s.name)).map((s) => s.at));
  return newest < lastSlot(cadence, now);
}

/** What a run at `now` does: a snapshot for every schedule whose current slot has none yet, then retention. */
export function planScheduleRun(volume: string, schedules: ScheduleRecord[], snapshots: SnapshotInfo[], now: number, guards: RetentionGuard[] = defaultGuards): SchedulePlan {
  const plan: SchedulePlan = { take: [], prune: [], kept: [] };
  const names = new Set(snapshots.map((s) => s.name));
  for (const sch of schedules) {
    const mine = snapshots.filter((s) => madeBy(sch.label, s.name)).sort((a, b) => Date.parse(a.createdAt) - Date.parse(b.createdAt));
    const slot = lastSlot(sch.cadence as Cadence, now);
    const due = isDue(sch.label, sch.cadence as Cadence, mine.map((s) => ({ name: s.name, at: Date.parse(s.createdAt) })), now);
    let count = mine.length;
    if (due) {
      let name = snapshotNameFor(sch.label, slot);
      for (let k = 2; names.has(name); k++) name = `${snapshotNameFor(sch.label, slot)}-${k}`;
      names.add(name);
      plan.take.push({ label: sch.label, name, slot });
      count++;
    }
    // Retention: the newest `keep` stay (the one being taken counts); older ones go unless a guard keeps them.
    for (const s of mine.slice(0, Math.max(0, count - sch.keep))) {
      const reasons = guards.map((g) => g(volume, s)).filter((r): r is string => r !== null);
      if (reasons.length > 0) plan.kept.push({ name: s.name, reason: reasons.join('; ') });
      else plan.prune.push({ label: sch.label, name: s.name });
    }
  }
  return plan;
}
