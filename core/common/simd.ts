/**
 * The XOR kernel (simd-kernel.wat, WebAssembly SIMD) over its own memory, for RAID parity and reconstruction;
 * callers place their data in the instance's memory.
 */
import { SIMD_KERNEL_WASM } from './simd-kernel-wasm.js';

export interface SimdKernel {
  memory: { buffer: ArrayBuffer; grow(pages: number): number };
  xor(d: number, a: number, b: number, n: number): void;
}

/** The WebAssembly API, typed here because core/ is compiled without the DOM library that declares it. */
interface WasmApi {
  Module: new (bytes: Uint8Array) => object;
  Instance: new (module: object) => { exports: unknown };
}
const wasm = (globalThis as unknown as { WebAssembly: WasmApi }).WebAssembly;
let compiled: object | null = null;

/** A new kernel instance whose memory holds at least `bytes` (it never grows afterwards unless asked). */
export function simdKernel(bytes: number): SimdKernel {
  compiled ??= new wasm.Module(Buffer.from(SIMD_KERNEL_WASM, 'base64'));
  const k = new wasm.Instance(compiled).exports as SimdKernel;
  const need = Math.ceil(bytes / 65536);
  const have = k.memory.buffer.byteLength / 65536;
  if (need > have) k.memory.grow(need - have);
  return k;
}

/**
 * Buffers inside one WebAssembly memory, XORed there 16 bytes per instruction (RAID parity and reconstruction).
 * The memory is sized once and never grows, so views handed out stay valid.
 */
export class XorArena {
  private readonly exports: SimdKernel;
  private used = 0;

  constructor(readonly bytes: number) {
    this.exports = simdKernel(bytes);
  }

  /** A new buffer of `bytes` (a multiple of 64) inside the arena. */
  alloc(bytes: number): Buffer {
    if (bytes % 64 !== 0 || this.used + bytes > this.exports.memory.buffer.byteLength) throw new RangeError('XorArena: out of room');
    const b = Buffer.from(this.exports.memory.buffer, this.used, bytes);
    this.used += bytes;
    return b;
  }

  /** Bytes left for alloc. */
  get free(): number {
    return this.exports.memory.buffer.byteLength - this.used;
  }

  /** True when `b` lies in this arena. */
  owns(b: Buffer): boolean {
    return b.buffer === this.exports.memory.buffer;
  }

  /** dst ^= src over `bytes` (a multiple of 64); both must be buffers of this arena. */
  xorInto(dst: Buffer, src: Buffer, bytes = dst.length): void {
    this.exports.xor(dst.byteOffset, dst.byteOffset, src.byteOffset, bytes);
  }
}
