/** A BlockDevice wrapper that makes its Nth operation (read, write or flush) fail, once or from then on. */
import type { BlockDevice, DeviceHealth } from '../../core/device/block-device.js';

export class InjectedFault extends Error {
  constructor(op: string, n: number) {
    super(`injected I/O error on operation ${n} (${op})`);
    (this as unknown as { code: string }).code = 'EIO';
  }
}

export class FaultyDevice implements BlockDevice {
  private count = 0;
  triggered = false;

  constructor(
    private readonly inner: BlockDevice,
    private readonly failAt: number,
    private readonly persistent: boolean,
  ) {}

  /** Operations seen so far. */
  get operations(): number {
    return this.count;
  }

  private tick(op: string): void {
    this.count++;
    if (this.count === this.failAt || (this.persistent && this.count > this.failAt)) {
      this.triggered = true;
      throw new InjectedFault(op, this.count);
    }
  }

  get blockCount(): number {
    return this.inner.blockCount;
  }
  get label(): string {
    return this.inner.label;
  }
  get readOnly(): boolean {
    return this.inner.readOnly;
  }
  async readBlocks(vbn: number, count: number, into?: Buffer): Promise<Buffer> {
    this.tick(`read ${vbn}+${count}`);
    return this.inner.readBlocks(vbn, count, into);
  }
  async writeBlocks(vbn: number, data: Buffer | Buffer[]): Promise<void> {
    this.tick(`write ${vbn}`);
    return this.inner.writeBlocks(vbn, data);
  }
  async flush(): Promise<void> {
    this.tick('flush');
    return this.inner.flush();
  }
  close(): Promise<void> {
    return this.inner.close();
  }
  health(): DeviceHealth {
    return this.inner.health();
  }
}
