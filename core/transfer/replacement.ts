/**
 * A mirror's replacement: the whole copy a full resync receives beside the mirror (`<volume>.replacement`), put in
 * its place only once it has committed, so the old mirror stays readable until then (ZFS receives a full stream
 * into a hidden clone and swaps the same way). The swap is asked for by a small file written before anything
 * moves; whoever finds it (the receive that wrote it, or the next status or receive after a crash) finishes it.
 */
import { access, readFile } from 'node:fs/promises';
import { removeFile, writeFileAtomic } from '../common/atomic-file.js';

/** Where the replacement of the volume at `volume` is received. */
export function replacementOf(volume: string): string {
  return `${volume}.replacement`;
}

function swapFileOf(volume: string): string {
  return `${volume}.replacement-swap.json`;
}

/** True when a replacement of `volume` exists (being received, or received and waiting for its swap). */
export async function hasReplacement(volume: string): Promise<boolean> {
  return access(replacementOf(volume)).then(
    () => true,
    () => false,
  );
}

/** Records that the committed replacement of `volume` is to take its place: from here on it will, crash or not. */
export async function askSwap(volume: string): Promise<void> {
  await writeFileAtomic(swapFileOf(volume), JSON.stringify({ asked: new Date().toISOString() }));
}

/** True while a swap of `volume` is asked for and not finished. */
export async function swapAsked(volume: string): Promise<boolean> {
  return readFile(swapFileOf(volume)).then(
    () => true,
    () => false,
  );
}

/** The swap is finished (the replacement is the volume now). */
export async function swapDone(volume: string): Promise<void> {
  await removeFile(swapFileOf(volume));
}
