/** Typed engine errors: every failure carries a stable code and, where known, the volume, path or VBN. */
import { dirname, resolve } from 'node:path';

export type ErrorCode =
  | 'ENOSPC'
  | 'CHECKSUM'
  | 'BAD_STREAM'
  | 'LOCKED'
  | 'NOT_FOUND'
  | 'EXISTS'
  | 'NOT_DIR'
  | 'IS_DIR'
  | 'NOT_EMPTY'
  | 'INVALID'
  | 'READ_ONLY'
  | 'BAD_FORMAT'
  | 'IO'
  | 'HELD'
  | 'LIMIT'
  | 'OUTSIDE'
  | 'CANCELLED'
  | 'CLOSED'
  | 'AUTH'
  | 'NET'
  | 'BUSY'
  | 'DIVERGED';

export interface ErrorContext {
  volume?: string;
  path?: string;
  vbn?: number;
  snapshot?: string;
  cause?: unknown;
}

export class SnapplaneError extends Error {
  readonly code: ErrorCode;
  readonly volume?: string;
  readonly path?: string;
  readonly vbn?: number;
  readonly snapshot?: string;

  constructor(code: ErrorCode, message: string, context: ErrorContext = {}) {
    super(message, context.cause === undefined ? undefined : { cause: context.cause });
    this.name = 'SnapplaneError';
    this.code = code;
    this.volume = context.volume;
    this.path = context.path;
    this.vbn = context.vbn;
    this.snapshot = context.snapshot;
  }

  /** A plain object for JSON reports and transports. */
  toJSON(): Record<string, unknown> {
    const out: Record<string, unknown> = { code: this.code, message: this.message };
    if (this.volume !== undefined) out.volume = this.volume;
    if (this.path !== undefined) out.path = this.path;
    if (this.vbn !== undefined) out.vbn = this.vbn;
    if (this.snapshot !== undefined) out.snapshot = this.snapshot;
    return out;
  }
}

/**
 * BUSY for a read-only view that a writer in another process changed under it (it committed and reused blocks the
 * view still points at): nothing is wrong on disk, and the same read from a fresh view succeeds.
 */
export class StaleViewError extends SnapplaneError {
  constructor(message: string, context: ErrorContext = {}) {
    super('BUSY', message, context);
  }
}

/** True when `e` is a SnapplaneError, optionally with the given code. */
export function isSnapplaneError(e: unknown, code?: ErrorCode): e is SnapplaneError {
  return e instanceof SnapplaneError && (code === undefined || e.code === code);
}

/** Wraps a host I/O failure as a typed IO error, keeping typed errors as they are. */
export function asIoError(e: unknown, message: string, context: ErrorContext = {}): SnapplaneError {
  if (e instanceof SnapplaneError) return e;
  const detail = e instanceof Error ? e.message : String(e);
  const code = (e as NodeJS.ErrnoException | null)?.code;
  // Images are sparse: they take host space as blocks are written, so a volume with free blocks can still hit this.
  if (code === 'ENOSPC' || code === 'EDQUOT') return new SnapplaneError('ENOSPC', `${message}: the host file system holding it is full (${detail})`, { ...context, cause: e });
  return new SnapplaneError('IO', `${message}: ${detail}`, { ...context, cause: e });
}

/**
 * The error of creating a host file or folder the user named (`what` at `path`: a backup file, a tape folder…):
 * it names `path` rather than the temporary made first, says why in words, and then what is kept (`kept`).
 */
export function hostCreateError(e: unknown, what: string, path: string, kept: string): SnapplaneError {
  if (e instanceof SnapplaneError) return e;
  const code = (e as NodeJS.ErrnoException | null)?.code;
  const folder = dirname(resolve(path));
  const context = { path, cause: e };
  const say = (c: ErrorCode, why: string): SnapplaneError => new SnapplaneError(c, `cannot create ${what} '${path}': ${why}; ${kept}`, context);
  switch (code) {
    case 'ENOENT':
      // The folder was checked before: it went away since, or its file system makes no files (/proc, /sys).
      return say('NOT_FOUND', `the folder '${folder}' does not exist or does not let files be created in it (ENOENT)`);
    case 'ENOTDIR':
      return say('NOT_DIR', `'${folder}' is not a folder (ENOTDIR)`);
    case 'EEXIST':
      return say('EXISTS', `something that is not a ${what} is already there (EEXIST)`);
    case 'EISDIR':
      return say('IS_DIR', `'${path}' is a folder (EISDIR)`);
    case 'EACCES':
    case 'EPERM':
      return say('IO', `permission denied in '${folder}' (${code})`);
    case 'EROFS':
      return say('READ_ONLY', `the file system holding '${folder}' is read-only (EROFS)`);
    case 'ENOSPC':
    case 'EDQUOT':
      return say('ENOSPC', `the host file system holding it is full (${code})`);
    default: {
      // Node's text names the system call and the temporary's path: only its first part is the reason.
      const detail = e instanceof Error ? e.message.replace(/, \w+ '.*$/s, '') : String(e);
      return say('IO', detail);
    }
  }
}
