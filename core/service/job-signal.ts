/**
 * The cancellation signal of the console job a call runs in. A console job (core/service/job-broker.ts) runs its
 * transfer inside `jobSignalScope.run(signal, ...)`; the facade's transfer jobs take that signal instead of a fresh
 * one, so cancelling one console job stops exactly its transfer (the CLI's Ctrl-C still cancels them all).
 */
import { AsyncLocalStorage } from 'node:async_hooks';

export const jobSignalScope = new AsyncLocalStorage<JobSignal>();

/** A console job's signal; `historyId` is the job-history id the console shows, taken by the job's first transfer record. */
export interface JobSignal {
  cancelled: boolean;
  historyId?: number;
}
