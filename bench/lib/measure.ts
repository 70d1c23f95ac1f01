/** Timing, medians, cache dropping and machine description for benchmarks. */
import { spawn, type ChildProcess } from 'node:child_process';
import { createInterface } from 'node:readline';
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

/**
 * A shell started once, before the first benchmark, that runs the benchmarks' commands. The bench process itself
 * never forks while it measures: a fork makes every page of the forking process copy-on-write, so its next touch
 * of each one is a page fault (on the test VM ~24,000 of them, ~300 ms, charged to an in-process replication
 * timed right after `sync; echo 3 > drop_caches` had been run with execSync; bench/RESULTS.md, 2026-12-03 23:40).
 */
let commandShell: { proc: ChildProcess; lines: AsyncIterator<string> } | null = null;
let queue: Promise<unknown> = Promise.resolve();

/** Starts the command shell (call before measuring anything; `stopShell` ends it). */
export function startShell(): void {
  if (commandShell) return;
  const proc = spawn('/bin/sh', [], { stdio: ['pipe', 'pipe', 'inherit'] });
  commandShell = { proc, lines: createInterface({ input: proc.stdout! })[Symbol.asyncIterator]() };
}

/** Ends the command shell. */
export function stopShell(): void {
  commandShell?.proc.stdin!.end();
  commandShell = null;
}

/** Runs `cmd` in the command shell (its output discarded unless it fails); rejects when it exits non-zero. */
export function shell(cmd: string): Promise<void> {
  const run = async (): Promise<void> => {
    startShell();
    const { proc, lines } = commandShell!;
    proc.stdin!.write(`{ ${cmd}\n} </dev/null 2>&1; echo "__done $?"\n`);
    const output: string[] = [];
    for (;;) {
      const r = await lines.next();
      if (r.done) throw new Error(`the command shell ended while running: ${cmd}`);
      const m = /^__done (\d+)$/.exec(r.value);
      if (!m) {
        output.push(r.value);
        continue;
      }
      if (m[1] !== '0') throw new Error(`'${cmd}' exited with ${m[1]}: ${output.slice(-5).join(' / ')}`);
      return;
    }
  };
  // One command at a time: their outputs share the shell's stdout.
  const next = queue.then(run, run);
  queue = next.catch(() => undefined);
  return next;
}

/** Drops the page cache when permitted (root); resolves to whether it did. */
export async function dropCaches(): Promise<boolean> {
  try {
    await shell('sync; echo 3 > /proc/sys/vm/drop_caches');
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
