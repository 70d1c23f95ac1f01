/**
 * The set algebra against a plain reference: random expressions over real planes (a volume whose blocks span
 * several 32,768-block chunks) evaluated by the engine and by JavaScript Sets of VBNs must agree exactly.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Volume } from '../../../core/fs/volume.js';
import { evaluateImage } from '../../../core/image/evaluate.js';
import { formatImageExpr, parseImageExpr, type ImageExpr } from '../../../core/image/expression.js';
import { pattern } from '../../helpers/model.js';

let dir: string;
let v: Volume;
const planes = new Map<string, Set<number>>();
const names = ['active', 'a', 'b', 'c', 'hourly-2026-11-25_0300', 'e'];

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'snapplane-algebra-'));
  v = await Volume.create(join(dir, 'v.img'), { sizeBytes: 512 * 2 ** 20, cpIntervalMs: 0 });
  const chunk = pattern(2 ** 20, 1);
  // About 150 MiB (38,400 blocks), so the planes span two chunks; each snapshot then rewrites parts and removes files.
  await v.writeFile('/big', Buffer.alloc(0));
  for (let i = 0; i < 150; i++) await v.writeAt('/big', i * 2 ** 20, chunk);
  let k = 0;
  for (const n of names.slice(1)) {
    k++;
    for (let j = 0; j < 10; j++) await v.writeAt('/big', ((k * 37 + j * 13) % 150) * 2 ** 20 + j * 4096 * 7, pattern(50_000, k * 100 + j));
    await v.writeFile(`/f${k}`, pattern(300_000, k));
    if (k >= 2) await v.remove(`/f${k - 1}`);
    await v.createSnapshot(n);
  }
  await v.writeAt('/big', 3 * 2 ** 20, pattern(2 ** 20, 99));
  await v.sync();
  const map = await v.planeMap();
  for (const e of v.snapshots.list()) {
    const p = await map.loadPlane(e.plane);
    const s = new Set<number>();
    p.forEach((x) => s.add(x));
    planes.set(e.name, s);
  }
  const act = new Set<number>();
  map.active.forEach((x) => act.add(x));
  planes.set('active', act);
}, 120_000);
afterAll(async () => {
  await v.close();
  await rm(dir, { recursive: true, force: true });
});

function reference(e: ImageExpr): Set<number> {
  if (e.kind === 'name') return planes.get(e.name)!;
  const l = reference(e.left);
  const r = reference(e.right);
  if (e.kind === 'union') return new Set([...l, ...r]);
  if (e.kind === 'difference') return new Set([...l].filter((x) => !r.has(x)));
  return new Set([...l].filter((x) => r.has(x)));
}

const exprArb: fc.Arbitrary<ImageExpr> = fc.letrec<{ e: ImageExpr }>((tie) => ({
  e: fc.oneof(
    { depthSize: 'small', withCrossShrink: true },
    fc.constantFrom(...names).map((name): ImageExpr => ({ kind: 'name', name, column: 0 })),
    fc.record({ kind: fc.constantFrom('union' as const, 'difference' as const, 'intersection' as const), left: tie('e'), right: tie('e'), column: fc.constant(0) }),
  ),
})).e;

describe('storage-image set algebra', () => {
  it('the planes span several chunks (so chunk boundaries are exercised)', () => {
    expect(Math.max(...planes.get('a')!) >> 15).toBeGreaterThanOrEqual(1);
  });

  it('evaluation equals the reference for random expressions', async () => {
    await fc.assert(
      fc.asyncProperty(exprArb, async (e) => {
        const text = formatImageExpr(e);
        const got = await evaluateImage(text, await v.planeMap(), v.snapshots.list(), 'v');
        const want = reference(e);
        expect(got.blocks).toBe(want.size);
        let missing = 0;
        for (const x of want) if (!got.plane.has(x)) missing++;
        expect(missing).toBe(0);
      }),
      { numRuns: 60 },
    );
  }, 120_000);

  it('printing and parsing are inverse (precedence and associativity survive)', () => {
    const strip = (e: ImageExpr): unknown => (e.kind === 'name' ? e.name : [e.kind, strip(e.left), strip(e.right)]);
    fc.assert(
      fc.property(exprArb, (e) => {
        expect(strip(parseImageExpr(formatImageExpr(e)))).toEqual(strip(e));
      }),
      { numRuns: 500 },
    );
  });

  it('grammar: hyphens inside names, operators at token starts, quoted names, precedence', () => {
    const strip = (e: ImageExpr): unknown => (e.kind === 'name' ? e.name : [e.kind, strip(e.left), strip(e.right)]);
    expect(strip(parseImageExpr('hourly-2026-11-25_0300 -a'))).toEqual(['difference', 'hourly-2026-11-25_0300', 'a']);
    expect(strip(parseImageExpr('a+b&c'))).toEqual(['union', 'a', ['intersection', 'b', 'c']]);
    expect(strip(parseImageExpr('a - b - c'))).toEqual(['difference', ['difference', 'a', 'b'], 'c']);
    expect(strip(parseImageExpr("'odd(name)' + a"))).toEqual(['union', 'odd(name)', 'a']);
    expect(() => parseImageExpr('a + ')).toThrow(/expected a snapshot name or '\(' but found end of expression at column 5/);
    expect(() => parseImageExpr('a b')).toThrow(/unexpected 'b' at column 3/);
  });
});
