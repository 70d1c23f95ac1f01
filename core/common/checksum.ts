/** Block checksums: CRC-32 (zlib's, hardware-assisted in Node) over a block's bytes. */
import { crc32 } from 'node:zlib';

/** CRC-32 of a buffer (the checksum carried by every block pointer). */
export function blockChecksum(data: Uint8Array): number {
  return crc32(data) >>> 0;
}
