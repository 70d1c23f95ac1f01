/**
 * Buffers of one size kept from one transfer to the next in a long-running process (console, daemon, `serve`).
 * Fresh memory costs a page fault per 4 KiB on its first touch, 10-20 µs each on the test VM: a send's read ring,
 * wire frames and walk buffers (30 MiB), made anew for each send and let go after it, cost an incremental
 * replication of 50 MiB ~4,000 faults in the sending process (bench/RESULTS.md, 2026-12-03 23:40). Spares no
 * transfer has asked for in a minute are let go.
 */

const IDLE_MS = 60_000;

export class SpareBuffers {
  private readonly spare: Buffer[] = [];
  private idle: NodeJS.Timeout | null = null;
  /** Buffers made from fresh memory so far. */
  made = 0;

  /** Buffers of `bytes` each; at most `keep` of them are kept. */
  constructor(
    readonly bytes: number,
    private readonly keep: number,
  ) {}

  /** A buffer of `bytes` with undefined contents: a kept one, or fresh memory. */
  take(): Buffer {
    const kept = this.spare.pop();
    if (kept) return kept;
    this.made++;
    return Buffer.allocUnsafeSlow(this.bytes);
  }

  /** Keeps `b` (taken from here) for a later take; whoever gives it must be done with it, and so must everyone it lent it to. */
  give(b: Buffer): void {
    if (b.length !== this.bytes || this.spare.length >= this.keep) return;
    this.spare.push(b);
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
