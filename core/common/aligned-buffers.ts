/**
 * Page-aligned I/O buffers, for reads and writes that bypass the page cache (O_DIRECT needs the memory, the file offset and
 * the length aligned). JavaScript cannot ask for aligned memory or learn a buffer's address; a WebAssembly memory is
 * the exception: the engine maps it whole, so its start is page-aligned and so is every 64 KiB page of it.
 */

// Node's types have no WebAssembly namespace without the DOM library; this is the one constructor used.
const wasm = (globalThis as unknown as { WebAssembly: { Memory: new (d: { initial: number }) => { buffer: ArrayBuffer } } }).WebAssembly;

/** Bytes per buffer: one stream record's payload (256 blocks of 4 KiB). */
export const ALIGNED_BUFFER_BYTES = 1 << 20;
/** Buffers in the process-wide pool: the receive keeps at most a few writes in flight. */
const POOL_BUFFERS = 8;

/** The memories alignedBufferSet made: a buffer over one of them starts page-aligned where its offset is. */
const alignedMemories = new WeakSet<ArrayBufferLike>();

/** `count` page-aligned buffers of `bytes` each (a multiple of 4 KiB); their memory goes when all of them are unreachable. */
export function alignedBufferSet(count: number, bytes: number): Buffer[] {
  const memory = new wasm.Memory({ initial: Math.ceil((count * bytes) / 65536) });
  alignedMemories.add(memory.buffer);
  return Array.from({ length: count }, (_, i) => Buffer.from(memory.buffer, i * bytes, bytes));
}

/** True when `b` starts on a page of memory alignedBufferSet made and is whole pages long: it can go to O_DIRECT as it is. */
export function isPageAligned(b: Uint8Array): boolean {
  return alignedMemories.has(b.buffer) && b.byteOffset % 4096 === 0 && b.byteLength % 4096 === 0;
}

/** A fixed set of page-aligned buffers handed out one at a time; `take` waits while all are out. */
export class AlignedBufferPool {
  private readonly free: Buffer[] = [];
  private readonly waiting: ((b: Buffer) => void)[] = [];

  constructor(count: number, bytes: number) {
    this.free.push(...alignedBufferSet(count, bytes));
  }

  /** A buffer of the pool's size; give it back with `give` once the I/O using it has finished. */
  take(): Promise<Buffer> {
    const b = this.free.pop();
    if (b) return Promise.resolve(b);
    return new Promise((resolve) => this.waiting.push(resolve));
  }

  /** Returns a buffer taken from this pool. */
  give(b: Buffer): void {
    const next = this.waiting.shift();
    if (next) next(b);
    else this.free.push(b);
  }
}

let shared: AlignedBufferPool | null = null;

/** The process-wide pool (made on first use, so processes that never write in bulk never reserve it). */
export function alignedBuffers(): AlignedBufferPool {
  shared ??= new AlignedBufferPool(POOL_BUFFERS, ALIGNED_BUFFER_BYTES);
  return shared;
}
