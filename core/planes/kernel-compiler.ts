/**
 * Compiles one plane expression (postfix, over operand regions at fixed offsets) into a WebAssembly SIMD function
 * that makes a single pass: per 16 bytes it loads every operand, combines them, stores the result and counts its
 * bits. Fusing the steps keeps memory traffic at one read per operand and one write, with no intermediate regions.
 *
 * The module imports its memory (env.memory), so every compiled variant of a kernel works on the same regions.
 * Binary layout per the WebAssembly core spec, sections 5.5 (modules) and 5.4.8 (vector instructions).
 */

/** A postfix step over operand regions: push region `index`, or combine the top two values. */
export type FusedOp = { op: 'load'; index: number } | { op: 'or' | 'andnot' | 'and' };

const I32 = 0x7f;
const V128 = 0x7b;

/** Unsigned LEB128, the encoding of every index, size and immediate in the binary format. */
function uleb(n: number): number[] {
  const out: number[] = [];
  do {
    let b = n & 0x7f;
    n = Math.floor(n / 128);
    if (n > 0) b |= 0x80;
    out.push(b);
  } while (n > 0);
  return out;
}

/** Signed LEB128 (i32.const immediates). */
function sleb(n: number): number[] {
  const out: number[] = [];
  for (;;) {
    const b = n & 0x7f;
    n >>= 7;
    if ((n === 0 && (b & 0x40) === 0) || (n === -1 && (b & 0x40) !== 0)) {
      out.push(b);
      return out;
    }
    out.push(b | 0x80);
  }
}

const name = (s: string): number[] => [...uleb(s.length), ...Buffer.from(s, 'latin1')];
const section = (id: number, body: number[]): number[] => [id, ...uleb(body.length), ...body];
const vec = (items: number[][]): number[] => [...uleb(items.length), ...items.flat()];

// Vector opcodes (0xfd prefix, then the opcode as unsigned LEB128).
const simd = (op: number): number[] => [0xfd, ...uleb(op)];
const V128_LOAD = 0;
const V128_STORE = 11;
const I32X4_EXTRACT_LANE = 27;
const V128_AND = 78;
const V128_ANDNOT = 79;
const V128_OR = 80;
const I8X16_POPCNT = 98;
const I8X16_ADD = 110;
const I16X8_EXTADD_PAIRWISE_I8X16_U = 125;
const I32X4_EXTADD_PAIRWISE_I16X8_U = 127;
const I32X4_ADD = 174;

// Locals: params from (0) and to (1); then $v (2), $s (3), $acc (4).
const FROM = 0;
const TO = 1;
const V = 2;
const S = 3;
const ACC = 4;
const get = (l: number): number[] => [0x20, ...uleb(l)];
const set = (l: number): number[] => [0x21, ...uleb(l)];
const tee = (l: number): number[] => [0x22, ...uleb(l)];
const memarg = (offset: number): number[] => [4, ...uleb(offset)]; // align 2^4 = 16 bytes

/**
 * The module's bytes: export `run(from, to) → bits` evaluates `program` over byte offsets [from, to) of every region
 * (a multiple of 64 bytes), writing the result to region `out`; region k starts at k × regionBytes.
 */
export function fusedKernelModule(program: FusedOp[], out: number, regionBytes: number, memoryPages: number): Uint8Array {
  const body: number[] = [];
  // block $done  loop $l  br_if $done (from >= to)
  body.push(0x02, 0x40, 0x03, 0x40, ...get(FROM), ...get(TO), 0x4f, 0x0d, 1);
  for (let lane = 0; lane < 4; lane++) {
    const off = lane * 16;
    body.push(...get(FROM));
    for (const step of program) {
      if (step.op === 'load') body.push(...get(FROM), ...simd(V128_LOAD), ...memarg(step.index * regionBytes + off));
      else body.push(...simd(step.op === 'or' ? V128_OR : step.op === 'andnot' ? V128_ANDNOT : V128_AND));
    }
    body.push(...tee(V), ...simd(V128_STORE), ...memarg(out * regionBytes + off));
    // Byte counts (≤ 8 each) added bytewise: four vectors' worth stays ≤ 32 per byte.
    body.push(...get(V), ...simd(I8X16_POPCNT));
    if (lane > 0) body.push(...get(S), ...simd(I8X16_ADD));
    body.push(...set(S));
  }
  // Widened once per 64 bytes: bytes pairwise into 16-bit lanes, those pairwise into the 32-bit accumulators.
  body.push(...get(ACC), ...get(S), ...simd(I16X8_EXTADD_PAIRWISE_I8X16_U), ...simd(I32X4_EXTADD_PAIRWISE_I16X8_U), ...simd(I32X4_ADD), ...set(ACC));
  body.push(...get(FROM), 0x41, ...sleb(64), 0x6a, ...set(FROM), 0x0c, 0, 0x0b, 0x0b);
  // Sum of the four 32-bit accumulator lanes.
  for (let lane = 0; lane < 4; lane++) {
    body.push(...get(ACC), ...simd(I32X4_EXTRACT_LANE), lane);
    if (lane > 0) body.push(0x6a);
  }
  body.push(0x0b);
  const locals = vec([[3, V128]]);
  const code = [...locals, ...body];
  return Uint8Array.from([
    0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00,
    ...section(1, vec([[0x60, ...vec([[I32], [I32]]), ...vec([[I32]])]])),
    ...section(2, vec([[...name('env'), ...name('memory'), 0x02, 0x00, ...uleb(memoryPages)]])),
    ...section(3, vec([[0]])),
    ...section(7, vec([[...name('run'), 0x00, 0]])),
    ...section(10, vec([[...uleb(code.length), ...code]])),
  ]);
}
