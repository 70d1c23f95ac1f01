/** XOR of equal-length buffers, a 32-bit word at a time when both are word-aligned. */
export function xorInto(dst: Buffer, src: Buffer): void {
  const n = Math.min(dst.length, src.length);
  if (dst.byteOffset % 4 === 0 && src.byteOffset % 4 === 0 && n % 4 === 0) {
    const a = new Int32Array(dst.buffer, dst.byteOffset, n >>> 2);
    const b = new Int32Array(src.buffer, src.byteOffset, n >>> 2);
    for (let i = 0; i < a.length; i++) a[i] ^= b[i];
    return;
  }
  for (let i = 0; i < n; i++) dst[i] ^= src[i];
}
