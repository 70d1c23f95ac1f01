/** Runs one command against the service: commits on success, releases without committing on failure. */
import { SnapplaneService, SnapplaneError } from '../core/service/index.js';

export class UsageError extends Error {}

/** Exit status for a failed command: 2 for usage, 1 otherwise. */
export function reportError(e: unknown): number {
  if (e instanceof SnapplaneError) {
    process.stderr.write(`snapplane: ${e.message} (${e.code})\n`);
    return 1;
  }
  if (e instanceof UsageError) {
    process.stderr.write(`snapplane: ${e.message}\n`);
    return 2;
  }
  const msg = e instanceof Error ? e.message : String(e);
  process.stderr.write(`snapplane: ${msg.split('\n')[0]}\n`);
  return 1;
}

/** Calls `fn` with a fresh service; the final consistency point is written only when `fn` succeeds. */
export async function withService(fn: (s: SnapplaneService) => Promise<number | void>): Promise<void> {
  const service = new SnapplaneService({ cpIntervalMs: 0 });
  // Ctrl-C (or SIGTERM) stops a transfer or a copy cleanly (a receive stays at its base and keeps a resume token; a
  // put or get removes its partial file); a second one quits at once. Either exits 128 + the signal's number.
  let interrupted = 0;
  const onSignal = (signal: 'SIGINT' | 'SIGTERM'): void => {
    interrupted = 128 + (signal === 'SIGINT' ? 2 : 15);
    if (service.cancelJobs() === 0) process.exit(interrupted);
    if (signal === 'SIGINT') process.stderr.write('\nsnapplane: cancelling (Ctrl-C again to quit at once)\n');
    process.once(signal, () => process.exit(interrupted));
  };
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);
  let status = 0;
  try {
    status = (await fn(service)) ?? 0;
    await service.closeAll();
  } catch (e) {
    await service.abortAll();
    status = reportError(e);
    // A transfer a signal cancelled ends with the shell's status for it (a failing --next-tape hook cancels too,
    // and is a plain failure).
    if (interrupted && e instanceof SnapplaneError && e.code === 'CANCELLED') status = interrupted;
  }
  process.removeListener('SIGINT', onSignal);
  process.removeListener('SIGTERM', onSignal);
  process.exitCode = status;
}

/** Parses a TCP port (0 lets the system pick one). */
export function parsePort(text: string, what = '--port'): number {
  const port = parseInteger(text, what);
  if (port > 65535) throw new UsageError(`${what} must be a TCP port, 0 to 65535 (got '${text}')`);
  return port;
}

/** Parses a member index or a positive integer option. */
export function parseInteger(text: string, what: string): number {
  if (!/^\d+$/.test(text)) throw new UsageError(`${what} must be a whole number (got '${text}')`);
  return Number(text);
}
