/** The BlockDevice port: everything above it addresses blocks by VBN and never knows how they reach disk. */

export interface DeviceMember {
  index: number;
  path: string;
  role: 'data' | 'parity' | 'single';
  state: 'ok' | 'missing' | 'failed' | 'rebuilding';
  /** Why a failed member was failed, or why a missing one is out of the group. */
  failure?: string;
}

export interface DeviceHealth {
  kind: 'image' | 'raid4';
  degraded: boolean;
  members: DeviceMember[];
}

export interface BlockDevice {
  /** Number of 4 KiB blocks addressable (VBN 0 .. blockCount-1). */
  readonly blockCount: number;
  /** A human label (the image path or group folder) used in error messages. */
  readonly label: string;
  readonly readOnly: boolean;
  /** True when several readBlocks calls may run at once (a plain image: positional reads share nothing). */
  readonly concurrentReads?: boolean;
  /**
   * Reads `count` consecutive blocks starting at `vbn` into one buffer of count*4096 bytes. With `into`
   * (exactly count*4096 bytes) the device may read into it and return it, sparing a fresh allocation; callers
   * must use the returned buffer either way.
   */
  readBlocks(vbn: number, count: number, into?: Buffer): Promise<Buffer>;
  /**
   * Bulk reads (a large send): may bypass the page cache. `into` (exactly count*4096 bytes) must be page-aligned
   * (core/common/aligned-buffers.ts); returns it filled, like readBlocks.
   */
  readBlocksDirect?(vbn: number, count: number, into: Buffer): Promise<Buffer>;
  /** Writes consecutive blocks starting at `vbn`; `data` holds whole blocks, possibly as several buffers. */
  writeBlocks(vbn: number, data: Buffer | Buffer[]): Promise<void>;
  /**
   * Bulk data nobody reads back soon (a received stream's blocks): may bypass the page cache. Same rules as
   * writeBlocks otherwise: durable after the next flush.
   */
  writeBlocksDirect?(vbn: number, data: Buffer): Promise<void>;
  /** A write barrier: returns when every earlier write is durable (fdatasync). */
  flush(): Promise<void>;
  /**
   * True when a flush may run while later writes go on (a plain image file: fdatasync makes the earlier writes
   * durable whatever follows). A RAID group's flush also retires its intent log, so writes must wait for it.
   */
  readonly flushWhileWriting?: boolean;
  /** Releases the device; further calls fail with CLOSED. */
  close(): Promise<void>;
  /** Members and health, for `volume info`. */
  health(): DeviceHealth;
  /** Redundant devices: rebuild one block from the other members (its checksum failed on its own member). */
  reconstructBlock?(vbn: number): Promise<Buffer>;
  /** Redundant devices: the member a VBN lives on (to say where rebuilt blocks came from). */
  memberOf?(vbn: number): number;
  /** Redundant devices: write a verified good copy of a block back to its member. */
  repairBlock?(vbn: number, data: Buffer): Promise<void>;
}
