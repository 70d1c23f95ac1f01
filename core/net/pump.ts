/**
 * Image-stream bytes over a wire connection: the sender packs them into frames reused from send to send (no fresh
 * buffer per frame; optional rate limit); the receiver gets them back as an async iterable that ends at the end-of-data frame.
 */
import { SnapplaneError } from '../common/errors.js';
import { fixedChunks } from '../common/fixed-chunks.js';
import { spareBuffers } from '../common/spare-buffers.js';
import { FrameType, type WireConnection, type WireMessage } from './wire.js';

const FRAME = 1 << 20;
const POOL = 8;
/** Frames kept between sends: enough for two at once. */
const spareFrames = spareBuffers(FRAME, 2 * POOL);

/** A token bucket in bytes per second (one second of burst). */
export class RateLimit {
  private allowance: number;
  private last = performance.now();
  constructor(readonly bytesPerSecond: number) {
    // Empty at the start: a full bucket let a transfer's first second go out at once, so a short one ran at twice
    // its limit (201 MiB in 1.2 s under --limit 100M).
    this.allowance = 0;
  }

  /**
   * Takes `n` bytes, waiting as long as they overdraw the bucket. Overdrawing (rather than waiting for `n` to be in
   * the bucket) holds the rate for pieces bigger than a second's worth too, which a bucket of one second never holds.
   */
  async take(n: number): Promise<void> {
    const now = performance.now();
    this.allowance = Math.min(this.bytesPerSecond, this.allowance + ((now - this.last) / 1000) * this.bytesPerSecond);
    this.last = now;
    this.allowance -= n;
    if (this.allowance < 0) await new Promise((r) => setTimeout(r, Math.ceil((-this.allowance / this.bytesPerSecond) * 1000)));
  }
}

/** The same stream, its buffers let through no faster than `limit` allows (a local destination's --limit). */
export async function* throttled(stream: AsyncIterable<Buffer>, limit: RateLimit): AsyncGenerator<Buffer> {
  for await (const b of stream) {
    await limit.take(b.length);
    yield b;
  }
}

/**
 * Sends a stream's bytes as data frames followed by the end-of-data frame. Incoming buffers may be reused by their
 * producer once the next one is asked for, so they are copied into frames the socket hands back when written.
 */
export async function pumpStream(conn: WireConnection, stream: AsyncIterable<Buffer>, limit: RateLimit | null): Promise<number> {
  // Frames out with the socket: at most POOL, each back among the spares once written (even after this returns).
  let out = 0;
  let waiting: (() => void) | null = null;
  const release = (b: Buffer): void => {
    out--;
    spareFrames.give(b);
    const w = waiting;
    waiting = null;
    w?.();
  };
  const frame = async (): Promise<Buffer> => {
    while (out >= POOL) {
      if (conn.isClosed) throw new SnapplaneError('NET', `connection to ${conn.peer} closed`);
      await new Promise<void>((r) => {
        waiting = r;
        // A socket that died without calling back: look again shortly.
        setTimeout(r, 1000).unref();
      });
    }
    out++;
    return spareFrames.take();
  };
  let total = 0;
  // Under a limit, frames no bigger than a second's worth: bytes keep flowing (the peer's idle timeout) and evenly.
  const size = limit ? Math.min(FRAME, Math.max(4096, Math.floor(limit.bytesPerSecond))) : FRAME;
  for await (const { buf, fill } of fixedChunks(stream, size, frame, true)) {
    if (limit) await limit.take(fill);
    conn.writeOwned(FrameType.data, buf.subarray(0, fill), () => release(buf));
    total += fill;
  }
  await conn.write(FrameType.dataEnd, Buffer.alloc(0));
  return total;
}

/** The stream bytes of the connection, up to the end-of-data frame; control messages in between go to `onMessage`. */
export async function* receiveStreamBytes(conn: WireConnection, onMessage?: (m: WireMessage) => void): AsyncGenerator<Buffer> {
  for (;;) {
    const e = await conn.next();
    if (e.type === 'data') yield e.data;
    else if (e.type === 'dataEnd') return;
    else if (onMessage) onMessage(e.message);
    else throw new SnapplaneError('NET', `${conn.peer}: unexpected control message inside stream bytes`);
  }
}
