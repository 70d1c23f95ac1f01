/** Numbers and dates for the screen. */

export function formatBytes(n: number): string {
  if (!Number.isFinite(n)) return '-';
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB', 'PiB'];
  let v = Math.abs(n);
  let u = 0;
  while (v >= 1024 && u < units.length - 1) {
    v /= 1024;
    u++;
  }
  const text = u === 0 ? String(v) : v.toFixed(v < 10 ? 2 : v < 100 ? 1 : 0);
  return `${n < 0 ? '-' : ''}${text} ${units[u]}`;
}

export function formatCount(n: number): string {
  return n.toLocaleString('en-US');
}

export function formatRate(perSecond: number, unit: string): string {
  if (unit === 'bytes') return `${formatBytes(perSecond)}/s`;
  return `${perSecond.toFixed(perSecond < 10 ? 1 : 0)} ${unit}/s`;
}

export function formatAmount(n: number, unit: string): string {
  return unit === 'bytes' ? formatBytes(n) : `${formatCount(n)} ${unit}`;
}

export function formatEta(seconds: number | null): string {
  if (seconds === null || !Number.isFinite(seconds)) return '—';
  if (seconds < 1) return '<1 s';
  if (seconds < 120) return `${Math.round(seconds)} s`;
  if (seconds < 7200) return `${Math.round(seconds / 60)} min`;
  return `${(seconds / 3600).toFixed(1)} h`;
}

/** A date as YYYY-MM-DD HH:MM in local time (schedules are in local time: "at 02:00" is next at 02:00 here). */
export function formatDate(iso: string): string {
  const d = new Date(iso);
  if (Number.isNaN(d.getTime())) return iso;
  const two = (n: number): string => String(n).padStart(2, '0');
  return `${d.getFullYear()}-${two(d.getMonth() + 1)}-${two(d.getDate())} ${two(d.getHours())}:${two(d.getMinutes())}`;
}

export function percent(part: number, whole: number): number {
  return whole > 0 ? (100 * part) / whole : 0;
}
