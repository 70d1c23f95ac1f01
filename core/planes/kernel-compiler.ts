/**
 * Compiles one plane expression (postfix, over operands given by address) into a WebAssembly SIMD function that
 * makes a single pass: per 16 bytes it loads every operand, combines them, stores the result and counts its bits.
 * Fusing the steps keeps memory traffic at one read per operand and one write, with no intermediate regions.
 *
 * The module imports the plane arena's shared memory (env.memory), where the operands and the result live.
 * Binary layout per the WebAssembly core spec, sections 5.5 (modules) and 5.4.8 (vector instructions); shared
 * memory limits per the threads proposal (limits flag 3).
 */

/** A postfix step: push operand `index` (the index-th address parameter), or combine the top two values. */
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
const I32X4_SPLAT = 17;
const V128_AND = 78;
const V128_ANDNOT = 79;
const V128_OR = 80;
const I8X16_POPCNT = 98;
const I8X16_ADD = 110;
const I16X8_EXTADD_PAIRWISE_I8X16_U = 125;
const I32X4_EXTADD_PAIRWISE_I16X8_U = 127;
const I32X4_ADD = 174;

const get = (l: number): number[] => [0x20, ...uleb(l)];
const set = (l: number): number[] => [0x21, ...uleb(l)];
const tee = (l: number): number[] => [0x22, ...uleb(l)];
const memarg = (offset: number): number[] => [4, ...uleb(offset)]; // align 2^4 = 16 bytes

/**
 * The module's bytes: export `run(a_0, …, a_{operands-1}, out, segmentBytes, segments, counts) → bits` evaluates
 * `program` over `segments` × `segmentBytes` bytes (a multiple of 64) at each operand address, writes the result
 * at `out`, stores each segment's set bits as a u32 at `counts` + 4 × segment and returns their total. The memory
 * import is the plane arena's shared memory (`shared`, up to `memoryPages`) or a private one of that size.
 */
export function fusedKernelModule(program: FusedOp[], operands: number, memoryPages: number, shared: boolean): Uint8Array {
  // Locals: the operand addresses, out, segmentBytes, segments, counts; then $i, $end, $seg, $bits, $total (i32)
  // and $v, $s, $acc (v128).
  const OUT = operands;
  const SEG_BYTES = operands + 1;
  const SEGMENTS = operands + 2;
  const COUNTS = operands + 3;
  const I = operands + 4;
  const END = operands + 5;
  const SEG = operands + 6;
  const BITS = operands + 7;
  const TOTAL = operands + 8;
  const V = operands + 9;
  const S = operands + 10;
  const ACC = operands + 11;
  const at = (base: number): number[] => [...get(base), ...get(I), 0x6a]; // base + $i
  const body: number[] = [];
  // block $segsDone  loop $segs  br_if $segsDone ($seg >= segments)
  body.push(0x02, 0x40, 0x03, 0x40, ...get(SEG), ...get(SEGMENTS), 0x4f, 0x0d, 1);
  // $end = $i + segmentBytes; $acc = 0
  body.push(...get(I), ...get(SEG_BYTES), 0x6a, ...set(END), 0x41, 0, ...simd(I32X4_SPLAT), ...set(ACC));
  // block $done  loop $l  br_if $done ($i >= $end)
  body.push(0x02, 0x40, 0x03, 0x40, ...get(I), ...get(END), 0x4f, 0x0d, 1);
  for (let lane = 0; lane < 4; lane++) {
    const off = lane * 16;
    body.push(...at(OUT));
    for (const step of program) {
      if (step.op === 'load') body.push(...at(step.index), ...simd(V128_LOAD), ...memarg(off));
      else body.push(...simd(step.op === 'or' ? V128_OR : step.op === 'andnot' ? V128_ANDNOT : V128_AND));
    }
    body.push(...tee(V), ...simd(V128_STORE), ...memarg(off));
    // Byte counts (≤ 8 each) added bytewise: four vectors' worth stays ≤ 32 per byte.
    body.push(...get(V), ...simd(I8X16_POPCNT));
    if (lane > 0) body.push(...get(S), ...simd(I8X16_ADD));
    body.push(...set(S));
  }
  // Widened once per 64 bytes: bytes pairwise into 16-bit lanes, those pairwise into the 32-bit accumulators.
  body.push(...get(ACC), ...get(S), ...simd(I16X8_EXTADD_PAIRWISE_I8X16_U), ...simd(I32X4_EXTADD_PAIRWISE_I16X8_U), ...simd(I32X4_ADD), ...set(ACC));
  body.push(...get(I), 0x41, ...sleb(64), 0x6a, ...set(I), 0x0c, 0, 0x0b, 0x0b);
  // The segment's bits: the sum of the four accumulator lanes, stored at counts + 4 × $seg and added to $total.
  for (let lane = 0; lane < 4; lane++) {
    body.push(...get(ACC), ...simd(I32X4_EXTRACT_LANE), lane);
    if (lane > 0) body.push(0x6a);
  }
  body.push(...set(BITS));
  body.push(...get(COUNTS), ...get(SEG), 0x41, 2, 0x74, 0x6a, ...get(BITS), 0x36, 2, 0); // i32.store align=4
  body.push(...get(TOTAL), ...get(BITS), 0x6a, ...set(TOTAL));
  body.push(...get(SEG), 0x41, 1, 0x6a, ...set(SEG), 0x0c, 0, 0x0b, 0x0b);
  body.push(...get(TOTAL), 0x0b);
  const locals = vec([[5, I32], [3, V128]]);
  const code = [...locals, ...body];
  const params = Array.from({ length: operands + 4 }, () => [I32]);
  return Uint8Array.from([
    0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00,
    ...section(1, vec([[0x60, ...vec(params), ...vec([[I32]])]])),
    // A shared memory is imported with limits {min 1, max}; a private one with {min memoryPages}.
    ...section(2, vec([[...name('env'), ...name('memory'), 0x02, ...(shared ? [0x03, ...uleb(1), ...uleb(memoryPages)] : [0x00, ...uleb(memoryPages)])]])),
    ...section(3, vec([[0]])),
    ...section(7, vec([[...name('run'), 0x00, 0]])),
    ...section(10, vec([[...uleb(code.length), ...code]])),
  ]);
}
