/** Units: parsing and printing sizes and the block-size constant shared by every layer. */
import { SnapplaneError } from './errors.js';

export const BLOCK_SIZE = 4096;
export const BLOCK_SHIFT = 12;

const SUFFIX: Record<string, number> = { '': 1, B: 1, K: 2 ** 10, M: 2 ** 20, G: 2 ** 30, T: 2 ** 40 };

/** Parses "64M", "1G", "4096", "2T" (binary multiples) into bytes. */
export function parseSize(text: string): number {
  const m = /^\s*(\d+(?:\.\d+)?)\s*([KMGTB]?)(?:i?B)?\s*$/i.exec(text);
  if (!m) throw new SnapplaneError('INVALID', `bad size '${text}': expected a number with an optional K, M, G or T suffix`);
  const value = Number(m[1]) * SUFFIX[m[2].toUpperCase()];
  if (!Number.isFinite(value) || value <= 0) throw new SnapplaneError('INVALID', `bad size '${text}': must be positive`);
  return Math.floor(value);
}

/** Formats bytes with a binary suffix ("1.5 GiB"). */
export function formatBytes(bytes: number): string {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB', 'PiB'];
  let v = bytes;
  let i = 0;
  while (Math.abs(v) >= 1024 && i < units.length - 1) {
    v /= 1024;
    i++;
  }
  return i === 0 ? `${v} B` : `${v.toFixed(v >= 100 ? 0 : v >= 10 ? 1 : 2)} ${units[i]}`;
}

/** Interval suffixes and their lengths in ms. */
export const INTERVAL_UNITS: Record<string, number> = { s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000, w: 604_800_000 };

/** Parses an interval such as "15m", "1h", "2d", "1w". */
export function parseInterval(text: string): number {
  const m = /^(\d+)\s*([smhdw])$/i.exec(text.trim());
  if (!m || Number(m[1]) <= 0) throw new SnapplaneError('INVALID', `bad interval '${text}': use a number and s, m, h, d or w (e.g. 15m, 1h, 1d)`);
  const ms = Number(m[1]) * INTERVAL_UNITS[m[2].toLowerCase()];
  if (ms < 60_000) throw new SnapplaneError('INVALID', `interval '${text}' is shorter than a minute`);
  return ms;
}

