/**
 * A mirror's replacement: the whole copy a full resync receives beside the mirror (`<volume>.replacement`), put in
 * its place only once it has committed, so the old mirror stays readable until then (ZFS receives a full stream
 * into a hidden clone and swaps the same way). A record beside the volume (`<volume>.replacement.json`) says which
 * relationship the copy belongs to (nothing else at that path is ever deleted) and, once the copy has committed,
 * that the swap is asked for: whoever finds it asked (the receive that asked, or the next request after a crash)
 * finishes it.
 */
import { readJsonFile, removeFile, writeFileAtomic } from '../common/atomic-file.js';
import { replacementOf } from '../fs/sidecar.js';

/** What `<volume>.replacement.json` holds. */
export interface ReplacementRecord {
  /** The relationship whose full resync receives the copy. */
  relationship: string;
  started: string;
  /** Set once the copy has committed: from then on it takes the volume's place, crash or not. */
  swapAsked?: string;
}

export { replacementOf };

function recordOf(volume: string): string {
  return `${volume}.replacement.json`;
}

/** The record of a replacement of `volume`, or null when none is under way. */
export function readReplacement(volume: string): Promise<ReplacementRecord | null> {
  return readJsonFile<ReplacementRecord>(recordOf(volume));
}


/** Records that `relationship` receives a replacement of `volume`. */
export async function startReplacement(volume: string, relationship: string): Promise<void> {
  await writeFileAtomic(recordOf(volume), JSON.stringify({ relationship, started: new Date().toISOString() } satisfies ReplacementRecord));
}

/** Records that the committed replacement of `volume` is to take its place. */
export async function askSwap(volume: string, record: ReplacementRecord): Promise<void> {
  await writeFileAtomic(recordOf(volume), JSON.stringify({ ...record, swapAsked: new Date().toISOString() } satisfies ReplacementRecord));
}

/** The replacement is gone (it took the volume's place, or was deleted). */
export async function endReplacement(volume: string): Promise<void> {
  await removeFile(recordOf(volume));
}
