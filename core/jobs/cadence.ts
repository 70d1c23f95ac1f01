/**
 * Snapshot schedule cadences: "every <interval>" or "at HH:MM [on <weekday>]", in local time.
 * A cadence defines slots (the instants a snapshot is due); a run takes a snapshot when a slot has passed
 * since the last one it took. Runs missed while nothing was running are not replayed one by one: the next
 * run takes a single catch-up snapshot.
 */
import { SnapplaneError } from '../common/errors.js';
import { INTERVAL_UNITS, parseInterval } from '../common/units.js';
import { WEEKDAYS } from '../api/methods.js';

export type Cadence = { kind: 'every'; everyMs: number } | { kind: 'at'; hour: number; minute: number; weekday?: number };

export { parseInterval, WEEKDAYS };

/** Parses "--at HH:MM" with an optional weekday name (or its first three letters). */
export function parseAt(time: string, weekday?: string): Cadence {
  const m = /^(\d{1,2}):(\d{2})$/.exec(time.trim());
  if (!m || Number(m[1]) > 23 || Number(m[2]) > 59) throw new SnapplaneError('INVALID', `bad time '${time}': use HH:MM (00:00 to 23:59)`);
  let day: number | undefined;
  if (weekday !== undefined) {
    const w = weekday.trim().toLowerCase();
    day = WEEKDAYS.findIndex((d) => d === w || d.slice(0, 3) === w);
    if (day < 0) throw new SnapplaneError('INVALID', `bad weekday '${weekday}': use sunday … saturday`);
  }
  return { kind: 'at', hour: Number(m[1]), minute: Number(m[2]), weekday: day };
}

/** The cadence `--every <interval>` or `--at HH:MM [--on <weekday>]` gives (front ends check that one is given). */
export function cadenceOf(a: { every?: string; at?: string; on?: string }): Cadence {
  if (a.every !== undefined) return { kind: 'every', everyMs: parseInterval(a.every) };
  return parseAt(a.at ?? '', a.on);
}

/** The latest slot at or before `now` (ms). */
export function lastSlot(c: Cadence, now: number): number {
  if (c.kind === 'every') {
    // Interval slots are aligned to local midnight of 1970-01-04 (a Sunday), so "1d" means local midnight.
    const offset = new Date(now).getTimezoneOffset() * 60_000;
    return Math.floor((now - offset) / c.everyMs) * c.everyMs + offset;
  }
  const d = new Date(now);
  d.setSeconds(0, 0);
  d.setHours(c.hour, c.minute);
  while (d.getTime() > now || (c.weekday !== undefined && d.getDay() !== c.weekday)) d.setDate(d.getDate() - 1);
  return d.getTime();
}

/** The first slot strictly after `now`. */
export function nextSlot(c: Cadence, now: number): number {
  if (c.kind === 'every') return lastSlot(c, now) + c.everyMs;
  const d = new Date(now);
  d.setSeconds(0, 0);
  d.setHours(c.hour, c.minute);
  while (d.getTime() <= now || (c.weekday !== undefined && d.getDay() !== c.weekday)) d.setDate(d.getDate() + 1);
  return d.getTime();
}

/** Human description ("every 1h", "at 00:00 on sunday"). */
export function describeCadence(c: Cadence): string {
  if (c.kind === 'every') {
    for (const [u, ms] of Object.entries(INTERVAL_UNITS).reverse()) if (c.everyMs % ms === 0) return `every ${c.everyMs / ms}${u}`;
    return `every ${c.everyMs}ms`;
  }
  const t = `${String(c.hour).padStart(2, '0')}:${String(c.minute).padStart(2, '0')}`;
  return c.weekday === undefined ? `at ${t}` : `at ${t} on ${WEEKDAYS[c.weekday]}`;
}

/** The snapshot name a schedule gives a snapshot taken for slot `slot`: `<label>-YYYY-MM-DD_HHMM` (local time). */
export function snapshotNameFor(label: string, slot: number): string {
  const d = new Date(slot);
  const p = (n: number): string => String(n).padStart(2, '0');
  return `${label}-${d.getFullYear()}-${p(d.getMonth() + 1)}-${p(d.getDate())}_${p(d.getHours())}${p(d.getMinutes())}`;
}

/** True when `name` was made by the schedule called `label`. */
export function madeBy(label: string, name: string): boolean {
  return name.startsWith(`${label}-`) && /^\d{4}-\d{2}-\d{2}_\d{4}(-\d+)?$/.test(name.slice(label.length + 1));
}
