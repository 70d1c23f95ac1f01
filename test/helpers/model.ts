/** A reference model of a volume's namespace (paths to contents) and a comparison against a real volume. */
import { expect } from 'vitest';
import type { Volume } from '../../core/fs/volume.js';

export type Tree = Map<string, Buffer | 'dir'>;

/** Reads a volume's whole tree (files by content, folders as 'dir'). */
export async function readTree(v: Volume, dir = '/', into: Tree = new Map()): Promise<Tree> {
  for (const e of await v.readdir(dir)) {
    if (e.type === 'dir') {
      into.set(e.path, 'dir');
      await readTree(v, e.path, into);
    } else if (e.type === 'symlink') {
      into.set(e.path, Buffer.from(`-> ${e.target}`));
    } else {
      into.set(e.path, await v.readFile(e.path));
    }
  }
  return into;
}

/** Asserts that two trees hold the same paths with the same contents. */
export function expectSameTree(actual: Tree, expected: Tree, context: string): void {
  const a = [...actual.keys()].sort();
  const e = [...expected.keys()].sort();
  expect(a, `${context}: paths`).toEqual(e);
  for (const p of e) {
    const x = actual.get(p)!;
    const y = expected.get(p)!;
    if (x === 'dir' || y === 'dir') expect(x, `${context}: ${p}`).toBe(y);
    else expect((x as Buffer).equals(y as Buffer), `${context}: contents of ${p}`).toBe(true);
  }
}

/** A deep copy of a tree. */
export function cloneTree(t: Tree): Tree {
  return new Map([...t].map(([k, v]) => [k, v === 'dir' ? 'dir' : Buffer.from(v)]));
}

/** Deterministic file contents. */
export function pattern(size: number, seed: number): Buffer {
  const b = Buffer.alloc(size);
  let x = (seed * 2654435761 + 7) >>> 0;
  for (let i = 0; i < size; i++) {
    x = (x * 1103515245 + 12345) >>> 0;
    b[i] = x >>> 24;
  }
  return b;
}
