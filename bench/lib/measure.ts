/** Timing, medians, cache dropping and machine description for benchmarks. */
import { execSync } from 'node:child_process';
import { cpus, totalmem } from 'node:os';

/** Median of an array of numbers. */
export function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
}

/** Milliseconds taken by `fn`. */
export async function time(fn: () => Promise<unknown> | unknown): Promise<number> {
  const t = performance.now();
  await fn();
  return performance.now() - t;
}

/** Drops the page cache when permitted (root); returns whether it did. */
export function dropCaches(): boolean {
  try {
    execSync('sync; echo 3 > /proc/sys/vm/drop_caches', { stdio: 'ignore', shell: '/bin/sh' });
    return true;
  } catch {
    return false;
  }
}

/** One line describing this machine. */
export function machine(): string {
  const c = cpus();
  return `${c.length} × ${c[0]?.model.trim() ?? 'cpu'}, ${(totalmem() / 2 ** 30).toFixed(0)} GiB RAM, Node ${process.version}, ${process.platform}`;
}

export interface Result {
  name: string;
  figure: string;
  ratio: number;
  target: number;
  /** Extra absolute figures worth recording. */
  detail: string;
  /** A second, absolute target (e.g. "under 100 ms"), when the issue names one. */
  absoluteOk?: boolean;
}

/** Formats a result row for RESULTS.md. */
export function row(r: Result): string {
  const pass = r.ratio <= r.target && r.absoluteOk !== false;
  return `| ${r.name} | ${r.figure} | ${r.ratio.toFixed(2)}× | ≤ ${r.target}× | ${pass ? 'met' : '**missed**'} | ${r.detail} |`;
}
