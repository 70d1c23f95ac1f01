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

/**
 * Microseconds per first touch of a 4 KiB page of fresh memory (a minor page fault): under 1 on bare metal,
 * 12–20 on some virtual machines, where a transfer's fresh buffers and the runtime's own churn cost more than its
 * copies (bench/RESULTS.md, 2026-12-03 19:00).
 */
export function pageFaultMicros(): number {
  const bytes = 64 * 2 ** 20;
  const before = process.resourceUsage().minorPageFault;
  const t = performance.now();
  const b = Buffer.allocUnsafeSlow(bytes);
  for (let i = 0; i < bytes; i += 4096) b[i] = 1;
  const ms = performance.now() - t;
  const faults = process.resourceUsage().minorPageFault - before;
  return (ms * 1000) / Math.max(faults, 1);
}

/** One line describing this machine. */
export function machine(): string {
  const c = cpus();
  return `${c.length} × ${c[0]?.model.trim() ?? 'cpu'}, ${(totalmem() / 2 ** 30).toFixed(0)} GiB RAM, Node ${process.version}, ${process.platform}, page fault ${pageFaultMicros().toFixed(1)} µs`;
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
