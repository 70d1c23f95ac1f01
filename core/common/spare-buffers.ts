/**
 * Buffers kept from one transfer to the next in a long-running process (console, daemon, `serve`). Fresh memory
 * costs a page fault per 4 KiB on its first touch, 10-20 µs each on the test VM: a send's read ring, wire frames
 * and walk buffers (30 MiB), made anew for each send and let go after it, cost an incremental replication of
 * 50 MiB ~4,000 faults in the sending process (bench/RESULTS.md, 2026-12-03 23:40). Spares no transfer has asked
 * for in a minute are let go.
 */

const IDLE_MS = 60_000;

/** Spare things of one kind (a buffer, a ring of them), made by `make` when none is kept. */
export class Spares<T> {
  private readonly spare: T[] = [];
  private idle: NodeJS.Timeout | null = null;
  /** How many were made anew so far. */
  made = 0;

  /** At most `keep` are kept. */
  constructor(
    private readonly make: () => T,
    private readonly keep: number,
  ) {}

  /** A kept one (its contents undefined), or a new one. */
  take(): T {
    const kept = this.spare.pop();
    if (kept !== undefined) return kept;
    this.made++;
    return this.make();
  }

  /** Keeps `x` (taken from here) for a later take; whoever gives it must be done with it, and so must everyone it lent it to. */
  give(x: T): void {
    if (this.spare.length >= this.keep) return;
    this.spare.push(x);
    if (this.idle) this.idle.refresh();
    else {
      this.idle = setTimeout(() => {
        this.spare.length = 0;
        this.idle = null;
      }, IDLE_MS);
      // A kept spare never holds a process open.
      this.idle.unref();
    }
  }
}

/** Spare buffers of `bytes` each, at most `keep` of them kept. */
export function spareBuffers(bytes: number, keep: number): Spares<Buffer> {
  return new Spares(() => Buffer.allocUnsafeSlow(bytes), keep);
}
