/**
 * A BlockDevice wrapper that records every write (as single blocks, copied) and every flush, so a test can
 * rebuild the image as it would be after a crash at any point (the idea of dm-log-writes / CrashMonkey).
 */
import type { BlockDevice, DeviceHealth } from '../../core/device/block-device.js';

export type LogEvent = { kind: 'write'; vbn: number; data: Buffer } | { kind: 'flush' };

export class RecordingDevice implements BlockDevice {
  readonly log: LogEvent[] = [];
  constructor(private readonly inner: BlockDevice) {}
  get blockCount(): number {
    return this.inner.blockCount;
  }
  get label(): string {
    return this.inner.label;
  }
  get readOnly(): boolean {
    return this.inner.readOnly;
  }
  readBlocks(vbn: number, count: number, into?: Buffer): Promise<Buffer> {
    return this.inner.readBlocks(vbn, count, into);
  }
  async writeBlocks(vbn: number, data: Buffer | Buffer[]): Promise<void> {
    const all = Array.isArray(data) ? Buffer.concat(data) : Buffer.from(data);
    for (let k = 0; k * 4096 < all.length; k++) this.log.push({ kind: 'write', vbn: vbn + k, data: all.subarray(k * 4096, (k + 1) * 4096) });
    await this.inner.writeBlocks(vbn, data);
  }
  async flush(): Promise<void> {
    this.log.push({ kind: 'flush' });
    await this.inner.flush();
  }
  close(): Promise<void> {
    return this.inner.close();
  }
  health(): DeviceHealth {
    return this.inner.health();
  }
}

/** A seeded pseudo-random generator (mulberry32), so every failure can be replayed from its seed. */
export function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

export interface CrashImage {
  image: Buffer;
  description: string;
}

/**
 * Images a crash could leave after the events [0, prefix): every write before the last flush in the prefix is
 * durable; of the writes after it, the disk may hold any subset, and the last one may be torn.
 */
export function crashImages(base: Buffer, log: LogEvent[], prefix: number, random: () => number, variants: number): CrashImage[] {
  let lastFlush = -1;
  for (let i = 0; i < prefix; i++) if (log[i].kind === 'flush') lastFlush = i;
  const apply = (img: Buffer, e: LogEvent): void => {
    if (e.kind === 'write') e.data.copy(img, e.vbn * 4096);
  };
  const durable = Buffer.from(base);
  for (let i = 0; i <= lastFlush; i++) apply(durable, log[i]);
  const pending = log.slice(lastFlush + 1, prefix).filter((e): e is Extract<LogEvent, { kind: 'write' }> => e.kind === 'write');
  const out: CrashImage[] = [];
  const inOrder = Buffer.from(durable);
  for (const e of pending) apply(inOrder, e);
  out.push({ image: inOrder, description: `prefix ${prefix}, all ${pending.length} pending writes in order` });
  if (pending.length === 0) return out;
  for (let v = 0; v < variants; v++) {
    const img = Buffer.from(durable);
    const chosen = pending.filter(() => random() < 0.5);
    for (const e of chosen) apply(img, e);
    out.push({ image: img, description: `prefix ${prefix}, subset of ${chosen.length}/${pending.length} pending writes` });
  }
  // A torn last write: only its first sectors reached the disk.
  const torn = Buffer.from(durable);
  for (const e of pending.slice(0, -1)) apply(torn, e);
  const last = pending[pending.length - 1];
  const sectors = 1 + Math.floor(random() * 7);
  last.data.copy(torn, last.vbn * 4096, 0, sectors * 512);
  out.push({ image: torn, description: `prefix ${prefix}, last write torn after ${sectors} sector(s)` });
  return out;
}
