/** Progress reporting and cancellation shared by long operations. */
import { SnapplaneError } from './errors.js';

export interface Progress {
  phase: string;
  done: number;
  total: number;
  unit: 'blocks' | 'bytes' | 'files' | 'items';
}

export type ProgressListener = (p: Progress) => void;

/** A cancellation token: long operations call `throwIfCancelled` between steps. */
export class CancelToken {
  private cancelled = false;
  /** Requests cancellation. */
  cancel(): void {
    this.cancelled = true;
  }
  /** True once cancel() was called. */
  get isCancelled(): boolean {
    return this.cancelled;
  }
  /** Throws a CANCELLED error when cancellation was requested. */
  throwIfCancelled(): void {
    if (this.cancelled) throw new SnapplaneError('CANCELLED', 'operation cancelled');
  }
}
